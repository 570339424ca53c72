/* test_lsb.c - the Lua sandbox: escapes refused, limits enforced, normal
 * code working, and the budgeted matcher agreeing with Lua's own. */
#include "lsb.h"
#include "tend.h"
#include "tt.h"

#include <lauxlib.h>
#include <lualib.h>
#include <time.h>

static char result[8192];

/* Runs src in sb; on success copies the first result (a string, or the
 * type name of anything else) into result and clears the stack. */
static int run(lsb *sb, const char *src)
{
	lua_State *L = lsb_state(sb);
	int base = lua_gettop(L);
	int rc = lsb_load(sb, "t.lua", src, strlen(src));
	result[0] = '\0';
	if (rc == 0 && lua_gettop(L) > base) {
		if (lua_type(L, base + 1) == LUA_TSTRING)
			snprintf(result, sizeof result, "%s", lua_tostring(L, base + 1));
		else
			snprintf(result, sizeof result, "<%s>", luaL_typename(L, base + 1));
	}
	lua_settop(L, base);
	return rc;
}

static lsb *fresh(void)
{
	lsb *sb = NULL;
	if (lsb_new(&sb, NULL) != 0)
		fprintf(stderr, "lsb_new: %s\n", tend_error_last());
	return sb;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void test_normal_code(void)
{
	lsb *sb = fresh();
	TT_REQUIRE(sb);
	TT_CHECK_RC(run(sb, "local t = {}\n"
			    "for i = 1, 10 do t[#t + 1] = i * i end\n"
			    "table.sort(t, function(a, b) return a > b end)\n"
			    "local ok, err = pcall(error, 'inner')\n"
			    "return string.format('%d %s %.3f %s %s %d', t[1], table.concat(t, ',', 9, 10),\n"
			    "  math.sqrt(2), tostring(ok), err, select('#', unpack({1, 2, 3})))"), 0);
	TT_CHECK_STR(result, "100 4,1 1.414 false inner 3");
	TT_CHECK_RC(run(sb, "return ('%s=%s'):format(('key'):upper(), utf8.char(228))"), 0);
	TT_CHECK_STR(result, "KEY=\xc3\xa4");
	TT_CHECK_RC(run(sb, "return type(os.time()) .. type(os.clock()) .. os.date('!%Y', 0)"), 0);
	TT_CHECK_STR(result, "numbernumber1970");
	/* globals persist between chunks of one sandbox */
	TT_CHECK_RC(run(sb, "counter = (counter or 0) + 1 return tostring(counter)"), 0);
	TT_CHECK_RC(run(sb, "counter = (counter or 0) + 1 return tostring(counter)"), 0);
	TT_CHECK_STR(result, "2");
	lsb_free(sb);
}

static void test_error_has_traceback(void)
{
	lsb *sb = fresh();
	TT_REQUIRE(sb);
	TT_CHECK_RC(run(sb, "local function inner()\n  error('boom')\nend\ninner()\n"), TEND_EINVAL);
	TT_CHECK_HAS(tend_error_last(), "t.lua:2: boom");
	TT_CHECK_HAS(tend_error_last(), "stack traceback:");
	TT_CHECK_HAS(tend_error_last(), "t.lua:2: in local 'inner'");
	TT_CHECK_HAS(tend_error_last(), "t.lua:4: in main chunk");
	TT_CHECK_RC(run(sb, "local x = \n"), TEND_EINVAL);
	TT_CHECK_HAS(tend_error_last(), "t.lua:2: unexpected symbol near <eof>");
	TT_CHECK_RC(run(sb, "error({})"), TEND_EINVAL);
	TT_CHECK_HAS(tend_error_last(), "(error object is a table value)");
	lsb_free(sb);
}

static void test_no_os_io_require(void)
{
	lsb *sb = fresh();
	TT_REQUIRE(sb);
	TT_CHECK_RC(run(sb, "os.execute('touch /tmp/tend-lsb-pwned')"), TEND_EINVAL);
	TT_CHECK_HAS(tend_error_last(), "attempt to call a nil value (field 'execute')");
	TT_CHECK_RC(run(sb, "os.exit(3)"), TEND_EINVAL);
	TT_CHECK_HAS(tend_error_last(), "attempt to call a nil value (field 'exit')");
	TT_CHECK_RC(run(sb, "return io.open('/etc/passwd')"), TEND_EINVAL);
	TT_CHECK_HAS(tend_error_last(), "attempt to index a nil value (global 'io')");
	TT_CHECK_RC(run(sb, "return require('os')"), TEND_EINVAL);
	TT_CHECK_HAS(tend_error_last(), "attempt to call a nil value (global 'require')");
	TT_CHECK_RC(run(sb, "return dofile('/etc/passwd')"), TEND_EINVAL);
	TT_CHECK_HAS(tend_error_last(), "attempt to call a nil value (global 'dofile')");
	TT_CHECK_RC(run(sb, "return loadfile('/etc/passwd')"), TEND_EINVAL);
	TT_CHECK_HAS(tend_error_last(), "attempt to call a nil value (global 'loadfile')");
	TT_CHECK_RC(run(sb, "return debug.getregistry()"), TEND_EINVAL);
	TT_CHECK_HAS(tend_error_last(), "attempt to index a nil value (global 'debug')");
	TT_CHECK_RC(run(sb, "local n = 0 for k in pairs(os) do n = n + 1 end\n"
			    "return n .. tostring(os.getenv) .. tostring(os.remove)"), 0);
	TT_CHECK_STR(result, "3nilnil");
	lsb_free(sb);
}

/* Bytecode made by string.dump in an ordinary state, fed in as a string. */
static void test_bytecode_refused(void)
{
	lua_State *plain = luaL_newstate();
	size_t len;
	TT_REQUIRE(plain);
	luaL_openlibs(plain);
	TT_REQUIRE(luaL_dostring(plain, "return string.dump(function() return os.execute end)") == 0);
	const char *bc = lua_tolstring(plain, -1, &len);
	lsb *sb = fresh();
	TT_REQUIRE(sb);
	TT_CHECK_RC(lsb_load(sb, "evil.luac", bc, len), TEND_EINVAL);
	TT_CHECK_STR(tend_error_last(), "evil.luac: bytecode is not allowed in the sandbox (text chunks only)");
	/* from inside: load() of the same bytes (set unprotected: a fresh
	 * sandbox is far below its cap) */
	lua_State *L = lsb_state(sb);
	lsb_push_env(sb);
	lua_pushlstring(L, bc, len);
	lua_setfield(L, -2, "BC");
	lua_pop(L, 1);
	TT_CHECK_RC(run(sb, "local f, err = load(BC) return tostring(f) .. ': ' .. err"), 0);
	TT_CHECK_STR(result, "nil: load: bytecode is not allowed in the sandbox (text chunks only)");
	TT_CHECK_RC(run(sb, "local f, err = load(BC, 'x', 'b') return tostring(f) .. ': ' .. err"), 0);
	TT_CHECK_STR(result, "nil: load: bytecode is not allowed in the sandbox (text chunks only)");
	TT_CHECK_RC(run(sb, "return load(function() return nil end)"), TEND_EINVAL);
	TT_CHECK_HAS(tend_error_last(), "load: only string chunks are allowed in the sandbox (got function)");
	lsb_free(sb);
	lua_close(plain);
}

static void test_no_dump(void)
{
	lsb *sb = fresh();
	TT_REQUIRE(sb);
	TT_CHECK_RC(run(sb, "return tostring(string.dump) .. tostring(('').dump) .. tostring(getmetatable(''))"), 0);
	TT_CHECK_STR(result, "nilnilfalse");
	TT_CHECK_RC(run(sb, "return getmetatable('').__index.dump"), TEND_EINVAL);
	TT_CHECK_HAS(tend_error_last(), "t.lua:1: attempt to index a boolean value");
	TT_CHECK_RC(run(sb, "string.dump(print)"), TEND_EINVAL);
	TT_CHECK_HAS(tend_error_last(), "attempt to call a nil value (field 'dump')");
	TT_CHECK_RC(run(sb, "setmetatable(getmetatable(''), {})"), TEND_EINVAL);
	TT_CHECK_HAS(tend_error_last(), "bad argument #1 to 'setmetatable' (table expected, got boolean)");
	/* string methods still work through the metatable */
	TT_CHECK_RC(run(sb, "return ('abc'):rep(2, '-'):upper()"), 0);
	TT_CHECK_STR(result, "ABC-ABC");
	lsb_free(sb);
}

static void test_real_globals_unreachable(void)
{
	lsb *sb = fresh();
	TT_REQUIRE(sb);
	TT_CHECK_RC(run(sb, "local seen = {}\n"
			    "for _, v in ipairs({_G.io, _ENV.debug, package, rawget(_G, 'io'),\n"
			    "  load('return io')(), load('return debug')(), getmetatable(_G),\n"
			    "  getmetatable(_ENV), _G.require, os.execute}) do seen[#seen + 1] = v end\n"
			    "return tostring(#seen) .. tostring(_G == _ENV) .. tostring(_G._G == _G)"), 0);
	TT_CHECK_STR(result, "0truetrue");
	/* load without env sees the sandbox _ENV; an env given is honoured */
	TT_CHECK_RC(run(sb, "marker = 'sb' return load('return marker')() .. load('return x', 'c', 't', {x = 'own'})()"), 0);
	TT_CHECK_STR(result, "sbown");
	TT_CHECK_RC(run(sb, "return load('return io', 'x', 't', nil)()"), TEND_EINVAL);
	TT_CHECK_HAS(tend_error_last(), "attempt to index a nil value (upvalue '_ENV')");
	/* replacing the sandbox's own string table touches nothing outside */
	TT_CHECK_RC(run(sb, "string.format = nil return tostring(('x').format)"), 0);
	TT_CHECK_STR(result, "nil");
	lsb_free(sb);
}

static void test_collectgarbage_harmless(void)
{
	lsb *sb = fresh();
	TT_REQUIRE(sb);
	TT_CHECK_RC(run(sb, "collectgarbage('stop')"), TEND_EINVAL);
	TT_CHECK_HAS(tend_error_last(), "collectgarbage: option 'stop' is not allowed in the sandbox");
	TT_CHECK_RC(run(sb, "collectgarbage('generational')"), TEND_EINVAL);
	TT_CHECK_RC(run(sb, "return math.type(collectgarbage()) .. tostring(collectgarbage('count') > 1)"), 0);
	TT_CHECK_STR(result, "integertrue");
	lsb_free(sb);
}

static void test_budget_stops_loops(void)
{
	lsb *sb = fresh();
	TT_REQUIRE(sb);
	TT_CHECK_RC(run(sb, "local n = 0\nwhile true do n = n + 1 end"), TEND_ETIMEOUT);
	TT_CHECK_HAS(tend_error_last(), "t.lua:2: instruction budget exceeded (10000000 per call)");
	TT_CHECK_HAS(tend_error_last(), "in main chunk");
	/* a pcall inside the sandbox cannot swallow it */
	TT_CHECK_RC(run(sb, "while true do pcall(function() while true do end end) end"), TEND_ETIMEOUT);
	TT_CHECK_HAS(tend_error_last(), "instruction budget exceeded");
	TT_CHECK_RC(run(sb, "local co = coroutine.wrap(function() while true do end end)\nco()"), TEND_ETIMEOUT);
	TT_CHECK_HAS(tend_error_last(), "t.lua:1: instruction budget exceeded");
	TT_CHECK_RC(run(sb, "local co = coroutine.create(function() local x = 0 while true do x = x + 1 end end)\n"
			    "local ok, err = coroutine.resume(co)\nreturn err"), TEND_ETIMEOUT);
	/* each call has its own budget: 6M instructions twice is fine */
	TT_CHECK_RC(run(sb, "for i = 1, 2000000 do end return 'a'"), 0);
	TT_CHECK_RC(run(sb, "for i = 1, 2000000 do end return 'b'"), 0);
	TT_CHECK_STR(result, "b");
	lsb_free(sb);
}

static void test_deadline(void)
{
	lsb_limits lim = {.instructions = 1LL << 50, .deadline_s = 0.05};
	lsb *sb = NULL;
	TT_REQUIRE(lsb_new(&sb, &lim) == 0);
	double t0 = now_s();
	TT_CHECK_RC(run(sb, "while true do end"), TEND_ETIMEOUT);
	TT_CHECK(now_s() - t0 < 2); /* loose: the machine may be busy */
	TT_CHECK_HAS(tend_error_last(), "deadline exceeded (0.05 s per call)");
	TT_CHECK_RC(run(sb, "return 'alive'"), 0);
	TT_CHECK_STR(result, "alive");
	lsb_free(sb);
	lim.deadline_s = -1;
	TT_CHECK_RC(lsb_new(&sb, &lim), TEND_EINVAL);
	TT_CHECK(sb == NULL);
}

/* Heap-heavy cases use a 16 MiB cap: big freed blocks make glibc's
 * MALLOC_PERTURB_ (set by meson test) slow for every later test. */
static lsb *fresh_small(void)
{
	lsb_limits lim = {.mem_bytes = 16 << 20};
	lsb *sb = NULL;
	if (lsb_new(&sb, &lim) != 0)
		fprintf(stderr, "lsb_new: %s\n", tend_error_last());
	return sb;
}

static void test_memory_cap(void)
{
	lsb *sb = fresh_small();
	TT_REQUIRE(sb);
	TT_CHECK_RC(run(sb, "local t, i = {}, 0\nwhile true do i = i + 1 t[i] = i end"), TEND_ENOMEM);
	TT_CHECK_STR(tend_error_last(), "not enough memory (the sandbox heap cap of 16777216 bytes was reached)");
	TT_CHECK(lsb_mem_used(sb) <= (16 << 20) + (1 << 20));
	/* the bomb's garbage is collected when the next call needs room */
	TT_CHECK_RC(run(sb, "return tostring(#('x'):rep(6e6))"), 0);
	TT_CHECK_STR(result, "6000000");
	/* a memory bomb caught by pcall leaves a working sandbox */
	TT_CHECK_RC(run(sb, "local ok, err = pcall(string.rep, 'x', 1e9) return err"), 0);
	TT_CHECK_STR(result, "not enough memory");
	lsb_free(sb);
	/* the default cap is 64 MiB: refused without allocating */
	sb = fresh();
	TT_REQUIRE(sb);
	TT_CHECK_RC(run(sb, "return ('x'):rep(65 << 20)"), TEND_ENOMEM);
	TT_CHECK_HAS(tend_error_last(), "heap cap of 67108864 bytes");
	lsb_free(sb);
}

static void test_deep_recursion(void)
{
	lsb *sb = fresh_small();
	TT_REQUIRE(sb);
	/* Lua frames: the heap cap is reached before Lua's own stack limit */
	TT_CHECK_RC(run(sb, "local function f() return 1 + f() end\nreturn f()"), TEND_ENOMEM);
	TT_CHECK_HAS(tend_error_last(), "not enough memory");
	/* C frames: metamethods and library callbacks */
	TT_CHECK_RC(run(sb, "local t = setmetatable({}, {__index = function(t, k) return t[k] end})\nreturn t.x"),
		    TEND_EINVAL);
	TT_CHECK_HAS(tend_error_last(), "t.lua:1: C stack overflow");
	TT_CHECK_RC(run(sb, "local function f(s) return (s:gsub('.', f)) end\nreturn f('ab')"), TEND_EINVAL);
	TT_CHECK_HAS(tend_error_last(), "stack overflow");
	TT_CHECK_RC(run(sb, "return 'fine'"), 0);
	TT_CHECK_STR(result, "fine");
	lsb_free(sb);
}

static void test_string_rep(void)
{
	lsb *sb = fresh();
	TT_REQUIRE(sb);
	TT_CHECK_RC(run(sb, "return ('x'):rep(1e9)"), TEND_ENOMEM);
	TT_CHECK_RC(run(sb, "return ('x'):rep(2^40)"), TEND_EINVAL);
	TT_CHECK_HAS(tend_error_last(), "resulting string too large");
	/* Lua's own rep loops n times over an empty string, in C */
	double t0 = now_s();
	TT_CHECK_RC(run(sb, "return ('') :rep(math.maxinteger) .. string.rep('', 2^62, '') .. 'ok'"), 0);
	TT_CHECK_STR(result, "ok");
	TT_CHECK(now_s() - t0 < 2); /* Lua's own would take years */
	lsb_free(sb);
}

static void test_no_finalizers(void)
{
	lsb *sb = fresh();
	TT_REQUIRE(sb);
	TT_CHECK_RC(run(sb, "setmetatable({}, {__gc = function() while true do end end})"), TEND_EINVAL);
	TT_CHECK_HAS(tend_error_last(), "setmetatable: __gc metamethods are not allowed in the sandbox");
	TT_CHECK_RC(run(sb, "local mt = {__metatable = 'mine'} local t = setmetatable({}, mt)\n"
			    "return getmetatable(t) .. tostring(pcall(setmetatable, t, {}))"), 0);
	TT_CHECK_STR(result, "minefalse");
	lsb_free(sb);
}

/* Table functions over a made-up length loop in C, out of the hook's sight. */
static void test_table_length_guard(void)
{
	static const char *const calls[] = {"table.insert(t, 1, 'x')", "table.remove(t, 1)",
		"table.sort(t)", "table.concat(t)", NULL};
	lsb *sb = fresh();
	TT_REQUIRE(sb);
	for (const char *const *c = calls; *c; c++) {
		char src[256];
		snprintf(src, sizeof src, "local t = setmetatable({}, {__len = function() return 2^40 end,"
			 " __index = rawlen})\n%s", *c);
		TT_CHECK_RC(run(sb, src), TEND_EINVAL);
		TT_CHECK_HAS(tend_error_last(), "length 1099511627776 is more than the sandbox allows (4194304)");
	}
	TT_CHECK_RC(run(sb, "table.move({}, 1, 2^50, 2)"), TEND_EINVAL);
	TT_CHECK_HAS(tend_error_last(), "table.move: range of 1125899906842624 elements is more than the sandbox allows");
	TT_CHECK_RC(run(sb, "local t = table.move({1, 2, 3}, 1, 3, 2) table.insert(t, 9)\n"
			    "table.remove(t, 1) return table.concat(t, ',')"), 0);
	TT_CHECK_STR(result, "1,2,3,9");
	lsb_free(sb);
}

static void test_pattern_budget(void)
{
	lsb *sb = fresh();
	TT_REQUIRE(sb);
	double t0 = now_s();
	TT_CHECK_RC(run(sb, "return ('a'):rep(40):find(('a*'):rep(20) .. 'b')"), TEND_ETIMEOUT);
	TT_CHECK_HAS(tend_error_last(), "t.lua:1: instruction budget exceeded");
	TT_CHECK_RC(run(sb, "local s = ('a'):rep(3e6) return s:find(('a'):rep(1e5) .. 'b', 1, true)"), TEND_ETIMEOUT);
	TT_CHECK_RC(run(sb, "for w in ('a'):rep(30):gmatch(('a-'):rep(12) .. 'b') do end"), TEND_ETIMEOUT);
	TT_CHECK_RC(run(sb, "return (('a'):rep(30):gsub(('a?'):rep(30) .. 'b', ''))"), TEND_ETIMEOUT);
	TT_CHECK(now_s() - t0 < 8); /* four calls, each stopped by budget or deadline */
	lsb_free(sb);
}

/* Lua code run in both a plain state and the sandbox: the budgeted matcher
 * must give the same results and error messages as Lua's own. */
static const char pattern_cases[] =
	"local cases = {\n"
	" {'find', 'hello world', 'o w'}, {'find', 'hello', 'l+'}, {'find', 'hello', 'xyz'},\n"
	" {'find', 'a.b', '.', 1, true}, {'find', 'abc', 'b', -1}, {'find', 'abc', 'b', -10},\n"
	" {'find', 'abc', '', 10}, {'find', 'abc', '', 4}, {'find', '', ''}, {'find', 'a+b', '+', 1, true},\n"
	" {'find', 'key = value', '(%w+)%s*=%s*(%w+)'}, {'find', 'abc', '()b()'},\n"
	" {'match', 'hello 123 world', '%d+'}, {'match', ' x ', '^%s*(.-)%s*$'},\n"
	" {'match', 'THE (quick) fox', '%((%a+)%)'}, {'match', 'abc', '^b'}, {'match', 'abc', 'c$'},\n"
	" {'match', 'a$b', 'a$b'}, {'match', 'aaab', 'a-b'}, {'match', 'aaab', 'a*'}, {'match', 'b', 'a?b'},\n"
	" {'match', '[x]', '[]]'}, {'match', 'x-y', '[%-]'}, {'match', 'Q', '[^%l]'}, {'match', 'f7', '[a-f0-9]+'},\n"
	" {'match', 'x = (a(b)c) y', '%b()'}, {'match', 'THE (quick) fox', '%f[%a]%a+%f[%A]', 5},\n"
	" {'match', 'hello', '(h)(e)(l)(l)(o)'}, {'match', 'xyzxyz', '(xyz)%1'}, {'match', 'abab', '(()a)'},\n"
	" {'match', '\\0a\\0', '%z?a'}, {'match', 'a\\0b', 'a%zb'}, {'match', '\\0\\1', '[\\0-\\1]+'},\n"
	" {'match', 'caf\\xc3\\xa9', '[\\x80-\\xff]+'}, {'match', '  x', '%S'}, {'match', 'a.b', '%.'},\n"
	" {'match', 'x', '%'}, {'match', 'x', '[a'}, {'match', 'x', '[a%'}, {'match', 'x', '%b'},\n"
	" {'match', 'x', '%f'}, {'match', 'x', '%f[a'}, {'match', 'x', '(x%2)'}, {'match', 'x', '(x%1)'},\n"
	" {'match', 'x', '%1'}, {'match', 'x', 'x)'}, {'match', 'x', '(x'}, {'match', 'x', ('()'):rep(33)},\n"
	" {'match', ('a'):rep(300), ('a?'):rep(250)}, {'match', 'x', 'x', 1.5},\n"
	" {'gsub', 'hello world', 'o', '0'}, {'gsub', 'hello world', '(o)', '[%1%1]'},\n"
	" {'gsub', 'hello', '', '-'}, {'gsub', 'abc', '%w', '%0%0'}, {'gsub', 'abc', '%w', '%%'},\n"
	" {'gsub', 'abc', '%w', '%2'}, {'gsub', 'abc', '%w', '%'}, {'gsub', 'abc', '%w', '%x'},\n"
	" {'gsub', 'abc', '^a', 'X'}, {'gsub', 'aaa', 'a', 'b', 2}, {'gsub', 'abc', '.', {a = 1, b = true}},\n"
	" {'gsub', 'abc', '.', {a = {}}}, {'gsub', 'abc', '(.)()', '%2'}, {'gsub', 'abc', 'x*', '-'},\n"
	" {'gsub', 'abc', '.', 12}, {'gsub', 'abc', '.', true}, {'gsub', 'abc', '%f[%w]', '<'},\n"
	" {'gsub', 'one two', '(%w+)', function(w) return w:upper() end},\n"
	" {'gsub', 'one two', '%w+', function(w) if w == 'one' then return false end return 2 end},\n"
	" {'gmatch', 'one two  three', '%a+'}, {'gmatch', 'k1=v1, k2=v2', '(%w+)=(%w+)'},\n"
	" {'gmatch', 'baaac', 'a*'}, {'gmatch', 'abc', ''}, {'gmatch', 'abcabc', 'b', 3},\n"
	" {'gmatch', '^a^a', '^a'}, {'gmatch', 'abc', '()', 10},\n"
	"}\n"
	"local seed = 12345\n"
	"local function rnd(n) seed = (seed * 1103515245 + 12345) % 2147483648 return seed % n + 1 end\n"
	"local function pick(s, n) local t = {} for i = 1, n do local k = rnd(#s) t[i] = s:sub(k, k) end\n"
	"  return table.concat(t) end\n"
	"for i = 1, 3000 do\n"
	"  local fn = ({'find', 'match', 'gsub', 'gmatch'})[rnd(4)]\n"
	"  cases[#cases + 1] = {fn, pick('aab]b(x.-', rnd(12) - 1), pick('ab()%.*+-?[]^$x1bf', rnd(8)), '<%0>'}\n"
	"  if fn ~= 'gsub' then cases[#cases][4] = rnd(14) - 4 end\n"
	"end\n"
	"local function ser(...)\n"
	"  local t, parts = table.pack(...), {}\n"
	"  for i = 1, t.n do parts[i] = type(t[i]) .. ':' .. tostring(t[i]) end\n"
	"  return table.concat(parts, ',')\n"
	"end\n"
	"local out = {}\n"
	"for i, c in ipairs(cases) do\n"
	"  local ok, r = pcall(function()\n"
	"    if c[1] ~= 'gmatch' then return ser(string[c[1]](c[2], c[3], c[4], c[5])) end\n"
	"    local all = {}\n"
	"    for a, b in string.gmatch(c[2], c[3], c[4]) do all[#all + 1] = ser(a, b) end\n"
	"    return table.concat(all, ';')\n"
	"  end)\n"
	"  out[i] = (ok and '' or 'ERR ') .. r\n"
	"end\n"
	"return table.concat(out, '\\n')\n";

static void test_patterns_match_lua(void)
{
	lua_State *plain = luaL_newstate();
	TT_REQUIRE(plain);
	luaL_openlibs(plain);
	TT_REQUIRE(luaL_loadbuffer(plain, pattern_cases, sizeof pattern_cases - 1, "@cases.lua") == 0);
	TT_REQUIRE(lua_pcall(plain, 0, 1, 0) == 0);
	size_t want_len, got_len;
	const char *want = lua_tolstring(plain, -1, &want_len);
	/* limits that a loaded machine cannot trip: this compares results */
	lsb_limits lim = {.instructions = 1LL << 40, .deadline_s = 60};
	lsb *sb = NULL;
	TT_REQUIRE(lsb_new(&sb, &lim) == 0);
	lua_State *L = lsb_state(sb);
	TT_CHECK_RC(lsb_load(sb, "cases.lua", pattern_cases, sizeof pattern_cases - 1), 0);
	TT_REQUIRE(lua_gettop(L) == 1);
	const char *got = lua_tolstring(L, -1, &got_len);
	TT_REQUIRE(got && want);
	/* report the first differing line (results may hold '\0') */
	size_t i = 0, line = 1, n = got_len < want_len ? got_len : want_len;
	for (; i < n && got[i] == want[i]; i++)
		line += got[i] == '\n';
	if (i < n || got_len != want_len)
		fprintf(stderr, "case %zu differs:\n got: %.200s\nwant: %.200s\n", line, got + i, want + i);
	TT_CHECK(got_len == want_len && memcmp(got, want, n) == 0);
	TT_CHECK(memmem(want, want_len, "ERR cases.lua:47: malformed pattern (missing ']')", 49));
	lsb_free(sb);
	lua_close(plain);
}

static void on_print(const char *text, size_t len, void *ud)
{
	char *buf = ud;
	strncat(buf, text, len);
}

static void test_print(void)
{
	char got[256] = "";
	size_t len;
	lsb *sb = fresh();
	TT_REQUIRE(sb);
	TT_CHECK_RC(run(sb, "print('a', 1, nil, true) print()"), 0);
	TT_CHECK_STR(lsb_output(sb, &len), "a\t1\tnil\ttrue\n\n");
	TT_CHECK(len == 14);
	TT_CHECK_RC(run(sb, "for i = 1, 20000 do print('0123456789') end"), 0);
	TT_CHECK(lsb_output(sb, &len) && len < (64 << 10) + 64);
	TT_CHECK_HAS(lsb_output(sb, NULL), "[print output truncated at 64 KiB]\n");
	lsb_output_clear(sb);
	TT_CHECK_STR(lsb_output(sb, NULL), "");
	lsb_set_print(sb, on_print, got);
	TT_CHECK_RC(run(sb, "print(setmetatable({}, {__tostring = function() return 'obj' end}))"), 0);
	TT_CHECK_STR(got, "obj\n");
	TT_CHECK_STR(lsb_output(sb, NULL), "");
	lsb_free(sb);
}

static void test_random_is_reproducible(void)
{
	char first[64];
	lsb *a = fresh(), *b = fresh();
	TT_REQUIRE(a && b);
	TT_CHECK_RC(run(a, "return tostring(math.random(1e9)) .. tostring(math.randomseed)"), 0);
	snprintf(first, sizeof first, "%s", result);
	TT_CHECK_RC(run(b, "return tostring(math.random(1e9)) .. tostring(math.randomseed)"), 0);
	TT_CHECK_STR(result, first);
	TT_CHECK_HAS(result, "nil");
	lsb_free(a);
	lsb_free(b);
}

/* Small caps drive the allocator to refuse at every point of setup and of
 * a first call: each must fail cleanly with TEND_ENOMEM or succeed. */
static void test_small_caps(void)
{
	lsb_limits lim = {.mem_bytes = 1024};
	lsb *sb = NULL;
	TT_CHECK_RC(lsb_new(&sb, &lim), TEND_ENOMEM);
	TT_CHECK(sb == NULL);
	int opened = 0;
	for (size_t cap = 2048; cap <= 96 << 10; cap += 512) {
		lim.mem_bytes = cap;
		int rc = lsb_new(&sb, &lim);
		TT_CHECK(rc == 0 || rc == TEND_ENOMEM);
		if (rc < 0)
			continue;
		opened++;
		rc = run(sb, "local t = {} for i = 1, 200 do t[i] = ('x'):rep(i) end return 'ok'");
		TT_CHECK(rc == 0 || rc == TEND_ENOMEM);
		lsb_free(sb);
	}
	TT_CHECK(opened > 0);
}

static void test_call_misuse(void)
{
	lsb *sb = fresh();
	TT_REQUIRE(sb);
	TT_CHECK_RC(lsb_call(sb, 3, 0), TEND_EINVAL);
	TT_CHECK_HAS(tend_error_last(), "lsb_call: 3 arguments but 0 values on the stack");
	lua_pushnumber(lsb_state(sb), 1);
	TT_CHECK_RC(lsb_call(sb, 0, 0), TEND_EINVAL);
	TT_CHECK_HAS(tend_error_last(), "attempt to call a number value");
	TT_CHECK(lua_gettop(lsb_state(sb)) == 0);
	lsb_free(sb);
	lsb_free(NULL);
}

int main(void)
{
	/* first: after the heap-heavy cases glibc's MALLOC_PERTURB_ makes its
	 * many reallocs slow */
	TT_RUN(test_patterns_match_lua);
	TT_RUN(test_normal_code);
	TT_RUN(test_error_has_traceback);
	TT_RUN(test_no_os_io_require);
	TT_RUN(test_bytecode_refused);
	TT_RUN(test_no_dump);
	TT_RUN(test_real_globals_unreachable);
	TT_RUN(test_collectgarbage_harmless);
	TT_RUN(test_budget_stops_loops);
	TT_RUN(test_deadline);
	TT_RUN(test_memory_cap);
	TT_RUN(test_deep_recursion);
	TT_RUN(test_string_rep);
	TT_RUN(test_no_finalizers);
	TT_RUN(test_table_length_guard);
	TT_RUN(test_pattern_budget);
	TT_RUN(test_print);
	TT_RUN(test_random_is_reproducible);
	TT_RUN(test_small_caps);
	TT_RUN(test_call_misuse);
	return TT_DONE();
}

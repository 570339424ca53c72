/*
 * mkws.c - `serve_mkws WS [BIG]`: fills a workspace made by `tend init`
 * with the dashboard tests' data (fill.h); BIG adds a run "big" with that
 * many loss values. Used by the browser test, which is a script.
 */
#include "fill.h"

int main(int argc, char **argv)
{
	if (argc == 5 && !strcmp(argv[2], "--live"))
		return fill_live_more(argv[1], atoll(argv[3]), atoll(argv[4])) < 0;
	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: serve_mkws WS [BIG] | serve_mkws WS --live FROM N\n");
		return 2;
	}
	git_libgit2_init();
	int rc = fill_workspace(argv[1], argc == 3 ? atoll(argv[2]) : 0);
	git_libgit2_shutdown();
	return rc < 0 ? 1 : 0;
}

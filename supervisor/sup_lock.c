/*
 * sup_lock.c - the trainer lock: how a supervisor restarted after a crash
 * knows whether its run's trainer still lives, and which process it is.
 *
 * RUN_DIR/trainer.lock is flock'ed just before the launch and inherited by
 * the trainer (not close-on-exec); the supervisor closes its own copy at
 * once, so the lock is held exactly while the trainer, or a process it
 * spawned, is alive. Unlike a pid check this tells a live trainer from a
 * dead one that nobody reaped (a zombie: its files are closed) and from a
 * recycled pid. The file holds the trainer's pid, written after the fork;
 * a pid is believed only when that process holds the lock file open, and
 * when the supervisor died before writing it the holder is found in /proc.
 */
#include "sup_int.h"
#include "launch.h"
#include "tend.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

static void lock_path(const sup *s, char *out, size_t cap)
{
	snprintf(out, cap, "%s/trainer.lock", s->run_dir);
}

/* True when process pid has the file (device dev, inode ino) open. */
static bool holds(pid_t pid, dev_t dev, ino_t ino)
{
	char dir[64], fd[320];
	struct stat st;
	snprintf(dir, sizeof dir, "/proc/%d/fd", (int)pid);
	DIR *d = opendir(dir);
	if (!d)
		return false;
	bool found = false;
	for (struct dirent *e; !found && (e = readdir(d));) {
		snprintf(fd, sizeof fd, "%s/%s", dir, e->d_name);
		found = e->d_name[0] != '.' && stat(fd, &st) == 0 && st.st_dev == dev &&
			st.st_ino == ino;
	}
	closedir(d);
	return found;
}

/* The process-group leader among the holders of the file (the trainer;
 * its children share its group), else any holder; 0 when none. */
static pid_t find_holder(dev_t dev, ino_t ino)
{
	DIR *d = opendir("/proc");
	pid_t any = 0, leader = 0;
	if (!d)
		return 0;
	for (struct dirent *e; !leader && (e = readdir(d));) {
		pid_t p = (pid_t)atol(e->d_name);
		if (p <= 1 || p == getpid() || !holds(p, dev, ino))
			continue;
		any = any ? any : p;
		if (getpgid(p) == p)
			leader = p;
	}
	closedir(d);
	return leader ? leader : any;
}

bool sup__trainer_alive(sup *s, pid_t *pid)
{
	char path[PATH_MAX + 16], buf[32] = "";
	struct stat st;
	lock_path(s, path, sizeof path);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	bool alive = flock(fd, LOCK_SH | LOCK_NB) < 0 && errno == EWOULDBLOCK;
	if (alive && pid) {
		ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
		buf[n > 0 ? n : 0] = '\0';
		*pid = (pid_t)atol(buf);
		if (fstat(fd, &st) == 0 && (*pid <= 1 || !holds(*pid, st.st_dev, st.st_ino)))
			*pid = find_holder(st.st_dev, st.st_ino);
	}
	close(fd); /* also drops our shared lock when we got it */
	return alive;
}

/* Takes the lock for a new trainer: an inheritable descriptor, or a
 * negative code when a trainer of this run still holds it. */
static int lock_for_launch(sup *s)
{
	char path[PATH_MAX + 16];
	lock_path(s, path, sizeof path);
	int fd = open(path, O_RDWR | O_CREAT, 0644); /* no O_CLOEXEC: inherited */
	if (fd < 0)
		return tend_error_os("%s", path);
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		close(fd);
		return tend_error_set(TEND_EBUSY, "%s: a trainer of run %s is still running",
				      path, s->name);
	}
	/* No stale pid while the new one is unknown. */
	if (ftruncate(fd, 0) < 0) {
		close(fd);
		return tend_error_os("%s", path);
	}
	return fd;
}

int sup__launch_locked(sup *s, pid_t *pid, const launch_spec *spec)
{
	char buf[32];
	int fd = lock_for_launch(s), rc;
	if (fd < 0)
		return fd;
	launch_spec ls = *spec;
	ls.keep_fd = fd;
	if ((rc = launch_start(pid, &ls)) == 0) {
		/* Should this fail, the pid is found in /proc when needed. */
		int n = snprintf(buf, sizeof buf, "%d\n", (int)*pid);
		ssize_t w = pwrite(fd, buf, (size_t)n, 0);
		(void)w;
	}
	close(fd); /* the trainer's copy keeps the lock */
	return rc;
}

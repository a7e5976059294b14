/* SPDX-License-Identifier: MIT */
/*
 * test-names.c - a received file takes its name and gives it back
 * (tools/names.c): with the kernel's exchange, and without it (the test
 * stands in for renameat2, link and rename to refuse them as NFS, old
 * kernels or sandboxes do), the old file always keeps a name, a refusal
 * leaves both names as they were, and nothing is left behind.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "common.h"
#include "tools/names.h"

/* What the stand-ins refuse. */
static int exchange_errno;	  /* renameat2: 0 works, else this errno */
static bool links_refused;	  /* link(): EPERM */
static const char *rename_refused; /* rename() of this name: EIO, */
static int refusals_left;	   /* ... this many times */

int renameat2(int olddirfd, const char *oldpath, int newdirfd,
	      const char *newpath, unsigned int flags)
{
	if (exchange_errno) {
		errno = exchange_errno;
		return -1;
	}
	return (int)syscall(SYS_renameat2, olddirfd, oldpath, newdirfd,
			    newpath, flags);
}

int link(const char *oldpath, const char *newpath)
{
	if (links_refused) {
		errno = EPERM;
		return -1;
	}
	return (int)syscall(SYS_linkat, AT_FDCWD, oldpath, AT_FDCWD, newpath,
			    0);
}

int rename(const char *oldpath, const char *newpath)
{
	if (rename_refused && !strcmp(oldpath, rename_refused) &&
	    refusals_left > 0) {
		refusals_left--;
		errno = EIO;
		return -1;
	}
	return (int)syscall(SYS_renameat2, AT_FDCWD, oldpath, AT_FDCWD,
			    newpath, 0);
}

static char dir[] = "/tmp/test-names-XXXXXX";
static char temp[64], path[64], third[80];

static void put(const char *name, const char *text)
{
	FILE *f = fopen(name, "w");

	CU_ASSERT_FATAL(f != NULL);
	fputs(text, f);
	fclose(f);
}

/* What name holds ("" when nothing). */
static const char *holds(const char *name)
{
	static char buf[2][32];
	static int k;
	FILE *f = fopen(name, "r");
	char *b = buf[k++ % 2];

	b[0] = 0;
	if (f) {
		if (!fgets(b, sizeof(buf[0]), f))
			b[0] = 0;
		fclose(f);
	}
	return b;
}

static void fresh(bool old_file)
{
	unlink(temp);
	unlink(path);
	unlink(third);
	put(temp, "new");
	if (old_file)
		put(path, "old");
	exchange_errno = 0;
	links_refused = false;
	rename_refused = NULL;
	refusals_left = 0;
}

/* Take and give back, each way the file system may allow it. */
static void round_trip(int exchange_err, bool no_links)
{
	bool swapped;

	fresh(true);
	exchange_errno = exchange_err;
	links_refused = no_links;
	CU_ASSERT_EQUAL(name_take(temp, path, &swapped), 0);
	CU_ASSERT(swapped);
	CU_ASSERT_STRING_EQUAL(holds(path), "new");
	CU_ASSERT_STRING_EQUAL(holds(temp), "old");
	CU_ASSERT(access(third, F_OK) && errno == ENOENT);
	CU_ASSERT_EQUAL(name_give_back(temp, path, swapped), 0);
	CU_ASSERT_STRING_EQUAL(holds(path), "old");
	CU_ASSERT_STRING_EQUAL(holds(temp), "new");
	CU_ASSERT(access(third, F_OK) && errno == ENOENT);

	/* nothing at path before: nothing after the give-back */
	fresh(false);
	exchange_errno = exchange_err;
	links_refused = no_links;
	CU_ASSERT_EQUAL(name_take(temp, path, &swapped), 0);
	CU_ASSERT(!swapped);
	CU_ASSERT_STRING_EQUAL(holds(path), "new");
	CU_ASSERT_EQUAL(name_give_back(temp, path, swapped), 0);
	CU_ASSERT(access(path, F_OK) && errno == ENOENT);
	CU_ASSERT_STRING_EQUAL(holds(temp), "new");
}

static void test_exchange(void)
{
	round_trip(0, false);
}

static void test_no_exchange(void)
{
	round_trip(EINVAL, false); /* NFS, CIFS, FUSE */
	round_trip(ENOSYS, false); /* old kernels, sandboxes */
	round_trip(EINVAL, true);  /* and no hard links either */
}

/* The received file's rename refused: path still holds the old file,
 * temp the new one, and no third name is left. */
static void test_refused(void)
{
	for (int no_links = 0; no_links < 2; no_links++) {
		bool swapped = true;

		fresh(true);
		exchange_errno = EINVAL;
		links_refused = no_links;
		rename_refused = temp;
		refusals_left = 1;
		CU_ASSERT_EQUAL(name_take(temp, path, &swapped), -EIO);
		CU_ASSERT(!swapped);
		CU_ASSERT_STRING_EQUAL(holds(path), "old");
		CU_ASSERT_STRING_EQUAL(holds(temp), "new");
		CU_ASSERT(access(third, F_OK) && errno == ENOENT);

		/* the last step refused, taking and giving back */
		fresh(true);
		exchange_errno = EINVAL;
		links_refused = no_links;
		rename_refused = third;
		refusals_left = 1;
		CU_ASSERT_EQUAL(name_take(temp, path, &swapped), -EIO);
		CU_ASSERT_STRING_EQUAL(holds(path), "old");
		CU_ASSERT_STRING_EQUAL(holds(temp), "new");
		CU_ASSERT(access(third, F_OK) && errno == ENOENT);
		CU_ASSERT_EQUAL(name_take(temp, path, &swapped), 0);
		CU_ASSERT(swapped);
		refusals_left = 1;
		CU_ASSERT_EQUAL(name_give_back(temp, path, swapped), -EIO);
		CU_ASSERT_STRING_EQUAL(holds(path), "new");
		CU_ASSERT_STRING_EQUAL(holds(temp), "old");
		CU_ASSERT(access(third, F_OK) && errno == ENOENT);
	}
}

/* A directory that took the path is not replaced. */
static void test_directory(void)
{
	bool swapped;
	struct stat st;

	for (int emulated = 0; emulated < 2; emulated++) {
		fresh(false);
		exchange_errno = emulated ? EINVAL : 0;
		CU_ASSERT_FATAL(mkdir(path, 0700) == 0);
		CU_ASSERT_EQUAL(name_take(temp, path, &swapped), -EISDIR);
		CU_ASSERT(!stat(path, &st) && S_ISDIR(st.st_mode));
		CU_ASSERT_STRING_EQUAL(holds(temp), "new");
		rmdir(path);
	}
}

int main(void)
{
	static const struct test tests[] = {
		{ "with the kernel's exchange", test_exchange },
		{ "without it", test_no_exchange },
		{ "a refused rename changes nothing", test_refused },
		{ "a directory at the path stays", test_directory },
		{ NULL, NULL },
	};
	int r;

	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(temp, sizeof(temp), "%s/.f.multifd-1-0", dir);
	snprintf(path, sizeof(path), "%s/f", dir);
	snprintf(third, sizeof(third), "%s.old", temp);
	r = run_tests("names", tests, 60);
	unlink(temp);
	unlink(path);
	unlink(third);
	rmdir(dir);
	return r;
}

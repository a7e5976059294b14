/* SPDX-License-Identifier: MIT */
/* test-uri.c - URI parsing: each scheme, IPv6 brackets, the bad ones. */
#include "config.h"

#include <errno.h>

#include "common.h"
#include "transports/transport.h"

static void test_good(void)
{
	struct mfd_uri u;
	char err[200];

	CU_ASSERT_EQUAL(mfd__uri_parse("tcp:127.0.0.1:4444", &u, err,
				       sizeof(err)), 0);
	CU_ASSERT(u.scheme == MFD_SCHEME_TCP && !strcmp(u.host, "127.0.0.1") &&
		  !strcmp(u.port, "4444"));
	CU_ASSERT_EQUAL(mfd__uri_parse("tcp:[::1]:0", &u, err, sizeof(err)),
			0);
	CU_ASSERT(!strcmp(u.host, "::1") && !strcmp(u.port, "0"));
	CU_ASSERT_EQUAL(mfd__uri_parse("rdma:10.0.0.1:9", &u, err,
				       sizeof(err)), 0);
	CU_ASSERT_EQUAL(u.scheme, MFD_SCHEME_RDMA);
	CU_ASSERT_EQUAL(mfd__uri_parse("unix:/tmp/x.sock", &u, err,
				       sizeof(err)), 0);
	CU_ASSERT(u.scheme == MFD_SCHEME_UNIX && !strcmp(u.path, "/tmp/x.sock"));
}

static void test_bad(void)
{
	static const char *bad[] = {
		"tcp:", "tcp:host", "tcp:host:", "tcp::80", "tcp:h:99999",
		"tcp:h:-1", "tcp:h:8x", "tcp:::1:80", "tcp:[::1]80",
		"unix:", "udp:h:1", "", "tcp:[::1:80",
	};
	char err[200];
	struct mfd_uri u;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = 0;
		CU_ASSERT_EQUAL(mfd__uri_parse(bad[i], &u, err, sizeof(err)),
				-EINVAL);
		CU_ASSERT(err[0] != 0);
	}
	CU_ASSERT_EQUAL(mfd__uri_parse(NULL, &u, err, sizeof(err)), -EINVAL);
}

/* "A,B": a comma starts an endpoint only before a scheme, so fd:'s own
 * commas stay its descriptors; at most the given count. */
static void test_lists(void)
{
	struct mfd_uri u[3];
	char err[256];
	unsigned n = 0;

	CU_ASSERT_EQUAL(mfd__uri_parse_list("tcp:10.0.0.2:4444,unix:/tmp/a,b"
					    ",tcp:[::1]:5",
					    u, 3, &n, err, sizeof(err)),
			0);
	CU_ASSERT_EQUAL(n, 3);
	CU_ASSERT(!strcmp(u[0].host, "10.0.0.2") && !strcmp(u[0].port, "4444"));
	CU_ASSERT(u[1].scheme == MFD_SCHEME_UNIX && !strcmp(u[1].path, "/tmp/a,b"));
	CU_ASSERT(!strcmp(u[2].host, "::1") && !strcmp(u[2].text, "tcp:[::1]:5"));
	CU_ASSERT_EQUAL(mfd__uri_parse_list("fd:3,4,5", u, 3, &n, err,
					    sizeof(err)),
			0);
	CU_ASSERT(n == 1 && u[0].nfds == 3);
	CU_ASSERT_EQUAL(mfd__uri_parse_list("tcp:a:1,tcp:b:1,tcp:c:1,tcp:d:1",
					    u, 3, &n, err, sizeof(err)),
			-EINVAL);
	CU_ASSERT(strstr(err, "more than 3 endpoints") != NULL);
	CU_ASSERT_EQUAL(mfd__uri_parse_list("tcp:a:1,bogus:2", u, 3, &n, err,
					    sizeof(err)),
			-EINVAL);
	CU_ASSERT(strstr(err, "an unknown scheme after a comma") != NULL);
	CU_ASSERT_EQUAL(mfd__uri_parse_list("tcp:a:1,", u, 3, &n, err,
					    sizeof(err)),
			-EINVAL);
	CU_ASSERT(strstr(err, "no endpoint after a comma") != NULL);
	CU_ASSERT_EQUAL(mfd__uri_parse_list("tcp:a:1,,tcp:b:1", u, 3, &n, err,
					    sizeof(err)),
			-EINVAL);
	CU_ASSERT(strstr(err, "no endpoint after a comma") != NULL);
	CU_ASSERT(strstr(err, "an unknown scheme") == NULL);
}

int main(void)
{
	static const struct test tests[] = {
		{ "good URIs", test_good },
		{ "bad URIs", test_bad },
		{ "lists of endpoints", test_lists },
		{ NULL, NULL },
	};

	return run_tests("uri", tests, 30);
}

/* SPDX-License-Identifier: MIT */
/*
 * loopback.c - the smallest complete use of libmultifd: a receiver and a
 * sender in one process move 1 MiB over 2 TCP loopback channels, then the
 * two buffers are compared. Built against an installed libmultifd with
 *
 *   cc -o loopback loopback.c $(pkg-config --cflags --libs libmultifd)
 *
 * (scripts/package-test.sh does exactly that). Exit status 0: the bytes
 * arrived intact.
 */
#include <multifd.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LEN (1u << 20)

static int rx_status = -1;

static void *receive(void *rx)
{
	rx_status = mfd_recv_wait(rx);
	return NULL;
}

int main(void)
{
	struct mfd_session *rx, *tx;
	struct mfd_config cfg;
	struct mfd_stats st;
	unsigned char *src, *dst;
	pthread_t t;
	char err[256];
	unsigned i;

	/* regions must be page-aligned */
	if (posix_memalign((void **)&src, 4096, LEN) ||
	    posix_memalign((void **)&dst, 4096, LEN))
		return 1;
	for (i = 0; i < LEN; i++)
		src[i] = (unsigned char)(i * 7 + (i >> 12));
	memset(src + LEN / 2, 0, 4096); /* one zero page, sent as an offset */
	memset(dst, 0xaa, LEN);

	mfd_config_init(&cfg);
	cfg.uri = "tcp:127.0.0.1:0"; /* port 0: the receiver picks one */
	cfg.channels = 2;
	if (mfd_session_new(&cfg, MFD_ROLE_RECV, &rx, err, sizeof(err))) {
		fprintf(stderr, "loopback: receiver: %s\n", err);
		return 1;
	}
	if (mfd_session_add_region(rx, "ram", dst, LEN, false) < 0 ||
	    mfd_session_start(rx)) {
		fprintf(stderr, "loopback: receiver: %s\n",
			mfd_session_error(rx));
		return 1;
	}
	if (pthread_create(&t, NULL, receive, rx))
		return 1;

	cfg.uri = mfd_session_uri(rx);
	if (mfd_session_new(&cfg, MFD_ROLE_SEND, &tx, err, sizeof(err))) {
		fprintf(stderr, "loopback: sender: %s\n", err);
		return 1;
	}
	if (mfd_session_add_region(tx, "ram", src, LEN, false) < 0 ||
	    mfd_session_start(tx) || mfd_send_region(tx, 0) ||
	    mfd_send_sync(tx) || mfd_send_finish(tx)) {
		fprintf(stderr, "loopback: sender: %s\n", mfd_session_error(tx));
		mfd_session_cancel(rx);
		pthread_join(t, NULL);
		return 1;
	}
	pthread_join(t, NULL);
	if (rx_status) {
		fprintf(stderr, "loopback: receiver: %s\n",
			mfd_session_error(rx));
		return 1;
	}
	if (memcmp(src, dst, LEN)) {
		fprintf(stderr, "loopback: received bytes differ\n");
		return 1;
	}
	mfd_session_stats(tx, &st);
	printf("loopback: libmultifd %s moved %u bytes over %u channels "
	       "(%llu pages, %llu zero)\n", mfd_version(), LEN,
	       mfd_session_channels(tx),
	       (unsigned long long)(st.normal_pages + st.zero_pages),
	       (unsigned long long)st.zero_pages);
	mfd_session_free(tx);
	mfd_session_free(rx);
	free(src);
	free(dst);
	return 0;
}

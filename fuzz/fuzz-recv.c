/* SPDX-License-Identifier: MIT */
/*
 * fuzz-recv.c - libFuzzer target: the whole receive path, fed by a peer
 * that writes the fuzz input into a unix socket and hangs up. The
 * receiver is a real session built with the public API: its region sits
 * between guard pages, so a write outside it crashes, and everything it
 * allocated must be freed when the session is (leak detection is on).
 *
 * The first byte picks the receiver's setup:
 *   bits 0-1  method of the prefixed handshake (3 reads as none)
 *   bit 2     prefix a valid init and region table (channel 0 of 1), so
 *             that the rest of the input is packets
 *   bit 3     the region is declared zeroed (the written-page map path)
 *   bit 4     regions the receiver does not know are created by a
 *             callback (up to 1 MiB each, also between guard pages)
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "multifd.h"
#include "packet.h"

#define REGION_LEN (64u << 10)
#define PAGE_SIZE 512
#define PAGES_PER_PACKET 8
#define CB_MAX (1u << 20)
#define TIMEOUT_MS 300

struct guarded {
	uint8_t *mem;
	size_t len;
};

static size_t sys_page(void)
{
	return (size_t)sysconf(_SC_PAGESIZE);
}

/* len bytes between two inaccessible pages */
static int guarded_new(struct guarded *g, size_t len)
{
	size_t pg = sys_page();
	uint8_t *p = mmap(NULL, len + 2 * pg, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return -ENOMEM;
	mprotect(p, pg, PROT_NONE);
	mprotect(p + pg + len, pg, PROT_NONE);
	g->mem = p + pg;
	g->len = len;
	return 0;
}

static void guarded_free(struct guarded *g)
{
	if (g->mem)
		munmap(g->mem - sys_page(), g->len + 2 * sys_page());
}

struct cb_regions {
	struct guarded r[MFD_MAX_REGIONS];
	int n;
};

static int region_cb(void *opaque, const char *name, uint64_t length,
		     void **mem, bool *zeroed)
{
	struct cb_regions *cb = opaque;

	(void)name;
	if (length > CB_MAX || cb->n == MFD_MAX_REGIONS)
		return -ENOMEM;
	if (guarded_new(&cb->r[cb->n], (size_t)length))
		return -ENOMEM;
	*mem = cb->r[cb->n++].mem;
	*zeroed = true;
	return 0;
}

struct peer {
	const char *path;
	const uint8_t *prefix, *data;
	size_t prefix_len, size;
	struct mfd_session *s;
	pthread_mutex_t lock;
	bool done; /* the session is about to be freed */
};

static void send_all(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t r = send(fd, p, n, MSG_NOSIGNAL);

		if (r <= 0)
			return;
		p += r;
		n -= (size_t)r;
	}
}

/* Write everything, half-close, then drain what the receiver answers
 * until it closes: closing at once would fail its handshake answer and
 * hide the packet path behind an EPIPE. A receiver that closed a refused
 * connection would wait out its timeout for another one, which would make
 * most inputs cost 300 ms: once the receiver has hung up, cancel it. */
static void *peer_main(void *arg)
{
	struct peer *pe = arg;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = 5 };
	uint8_t sink[4096];
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	if (fd < 0)
		return NULL;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", pe->path);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (!connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		send_all(fd, pe->prefix, pe->prefix_len);
		send_all(fd, pe->data, pe->size);
		shutdown(fd, SHUT_WR);
		while (recv(fd, sink, sizeof(sink), 0) > 0)
			;
	}
	close(fd);
	pthread_mutex_lock(&pe->lock);
	if (!pe->done)
		mfd_session_cancel(pe->s);
	pthread_mutex_unlock(&pe->lock);
	return NULL;
}

/* A valid init for channel 0 of 1 and the region table: "ram". */
static size_t make_prefix(uint8_t *buf, size_t len, uint8_t method)
{
	struct mfd_init in = { .version = MFD_PROTO_VERSION,
			       .session_id = 0xf022,
			       .channel = 0,
			       .channels = 1,
			       .method = method,
			       .page_size = PAGE_SIZE,
			       .pages_per_packet = PAGES_PER_PACKET,
			       .region_count = 1 };
	int n;

	mfd__init_encode(&in, buf);
	n = mfd__region_encode("ram", REGION_LEN, buf + MFD_INIT_SIZE,
			       len - MFD_INIT_SIZE);
	return MFD_INIT_SIZE + (size_t)n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct cb_regions cb;
	uint8_t prefix[MFD_INIT_SIZE + MFD_REGION_ENTRY_MAX];
	char uri[64], err[256];
	struct mfd_session *s = NULL;
	struct mfd_config cfg;
	struct guarded ram = { 0 };
	struct peer pe = { .lock = PTHREAD_MUTEX_INITIALIZER };
	pthread_t t;
	uint8_t mode;

	if (size < 1)
		return 0;
	mode = data[0];
	snprintf(uri, sizeof(uri), "unix:/tmp/mfd-fuzz-%d.sock", getpid());
	pe.path = uri + 5;
	pe.data = data + 1;
	pe.size = size - 1;
	if (mode & 4) {
		pe.prefix = prefix;
		pe.prefix_len = make_prefix(prefix, sizeof(prefix),
					    (mode & 3) % 3);
	}
	mfd_config_init(&cfg);
	cfg.uri = uri;
	cfg.timeout_ms = TIMEOUT_MS;
	if (mode & 16) {
		cfg.region_cb = region_cb;
		cfg.region_opaque = &cb;
	}
	if (guarded_new(&ram, REGION_LEN) ||
	    mfd_session_new(&cfg, MFD_ROLE_RECV, &s, err, sizeof(err)) ||
	    mfd_session_add_region(s, "ram", ram.mem, REGION_LEN,
				   mode & 8) < 0 ||
	    mfd_session_start(s))
		abort();
	pe.s = s;
	if (pthread_create(&t, NULL, peer_main, &pe))
		abort();
	mfd_recv_wait(s);
	pthread_mutex_lock(&pe.lock);
	pe.done = true;
	pthread_mutex_unlock(&pe.lock);
	/* freeing closes the peer's socket, which ends its drain */
	mfd_session_free(s);
	pthread_join(t, NULL);
	guarded_free(&ram);
	while (cb.n)
		guarded_free(&cb.r[--cb.n]);
	return 0;
}

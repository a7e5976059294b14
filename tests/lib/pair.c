/* SPDX-License-Identifier: MIT */
/* pair.c - see pair.h. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "pair.h"

static void *rx_main(void *arg)
{
	struct pair *p = arg;

	p->rx_result = mfd_recv_wait(p->rx);
	return NULL;
}

int rx_start(struct pair *p, const struct mfd_config *cfg,
	     const char *listen_uri, uint8_t *dst, uint64_t len)
{
	struct mfd_config c = *cfg;
	char err[256];
	int r;

	memset(p, 0, sizeof(*p));
	c.uri = listen_uri;
	r = mfd_session_new(&c, MFD_ROLE_RECV, &p->rx, err, sizeof(err));
	if (r) {
		fprintf(stderr, "receiver: %s\n", err);
		return r;
	}
	r = mfd_session_add_region(p->rx, "ram", dst, len, true);
	if (r < 0)
		return r;
	r = mfd_session_start(p->rx);
	if (r)
		return r;
	r = pthread_create(&p->rt, NULL, rx_main, p);
	if (r)
		return -r;
	p->rt_started = true;
	return 0;
}

int pair_start(struct pair *p, const struct mfd_config *cfg,
	       const char *listen_uri, uint8_t *src, uint8_t *dst,
	       uint64_t len)
{
	int r = rx_start(p, cfg, listen_uri, dst, len);

	return r ? r : tx_start(p, cfg, src, len);
}

int tx_start(struct pair *p, const struct mfd_config *cfg, uint8_t *src,
	     uint64_t len)
{
	struct mfd_config c = *cfg;
	char err[256];
	int r;

	mfd_session_free(p->tx); /* a refused sender before this one */
	c.uri = mfd_session_uri(p->rx);
	r = mfd_session_new(&c, MFD_ROLE_SEND, &p->tx, err, sizeof(err));
	if (r) {
		fprintf(stderr, "sender: %s\n", err);
		return r;
	}
	p->region = mfd_session_add_region(p->tx, "ram", src, len, false);
	if (p->region < 0)
		return p->region;
	return mfd_session_start(p->tx);
}

int pair_join_rx(struct pair *p)
{
	if (p->rt_started) {
		pthread_join(p->rt, NULL);
		p->rt_started = false;
	}
	return p->rx_result;
}

int pair_finish(struct pair *p)
{
	int r = mfd_send_finish(p->tx);

	if (r)
		fprintf(stderr, "sender: %s\n", mfd_session_error(p->tx));
	if (pair_join_rx(p)) {
		fprintf(stderr, "receiver: %s\n", mfd_session_error(p->rx));
		return p->rx_result;
	}
	return r;
}

void pair_free(struct pair *p)
{
	if (p->rt_started) {
		mfd_session_cancel(p->rx);
		pair_join_rx(p);
	}
	mfd_session_free(p->tx);
	mfd_session_free(p->rx);
	p->tx = p->rx = NULL;
}

struct mfd_conn *raw_connect_bytes(const char *uri, const void *buf,
				   size_t len)
{
	const struct mfd_transport_ops *ops;
	struct mfd_conn *c = NULL;
	struct mfd_uri u;
	char err[256];

	if (mfd__uri_parse(uri, &u, err, sizeof(err)))
		return NULL;
	ops = mfd__transport_get(u.scheme);
	if (ops->connect(&u, 5000, &c, err, sizeof(err)))
		return NULL;
	mfd__tp_set_timeout(c, 10000);
	if (mfd__tp_send_buf(c, buf, len)) {
		mfd__tp_close(c);
		return NULL;
	}
	return c;
}

struct mfd_conn *raw_connect(const char *uri, uint16_t ch, uint16_t channels,
			     uint8_t method, uint64_t len)
{
	struct mfd_init in = { .version = MFD_PROTO_VERSION,
			       .session_id = 0x1234,
			       .channel = ch,
			       .channels = channels,
			       .method = method,
			       .page_size = 4096,
			       .pages_per_packet = 128,
			       .region_count = ch == 0 };
	uint8_t buf[MFD_INIT_SIZE + MFD_REGION_ENTRY_MAX];
	size_t n = MFD_INIT_SIZE;

	mfd__init_encode(&in, buf);
	if (ch == 0)
		n += (size_t)mfd__region_encode("ram", len, buf + n,
						sizeof(buf) - n);
	return raw_connect_bytes(uri, buf, n);
}

int raw_ack_msg(struct mfd_conn *c, int32_t *status, char *msg, size_t len)
{
	uint8_t ack[MFD_ACK_SIZE];
	struct mfd_ack a;
	char err[256];
	int r = mfd__tp_recv_buf(c, ack, sizeof(ack));

	if (!r)
		r = mfd__ack_decode(ack, &a, err, sizeof(err));
	if (r)
		return r;
	*status = a.status;
	if (a.msg_len >= len)
		return -EMSGSIZE;
	msg[a.msg_len] = 0;
	return a.msg_len ? mfd__tp_recv_buf(c, msg, a.msg_len) : 0;
}

int raw_ack(struct mfd_conn *c, int32_t *status)
{
	uint8_t ack[MFD_ACK_SIZE];
	struct mfd_ack a;
	char err[256];
	int r = mfd__tp_recv_buf(c, ack, sizeof(ack));

	if (!r)
		r = mfd__ack_decode(ack, &a, err, sizeof(err));
	if (!r)
		*status = a.status;
	return r;
}

static void *liar_main(void *arg)
{
	struct liar *lr = arg;
	uint8_t junk[512];
	struct mfd_conn *c;
	char err[200];

	if (mfd__tcp_ops.accept(lr->l, 5000, &c, err, sizeof(err)))
		return NULL;
	mfd__tp_set_timeout(c, 5000);
	for (size_t left = lr->skip; left;) {
		size_t n = left < sizeof(junk) ? left : sizeof(junk);

		if (mfd__tp_recv_buf(c, junk, n))
			break;
		left -= n;
	}
	mfd__tp_send_buf(c, lr->reply, lr->reply_len);
	usleep(lr->hold_ms * 1000);
	mfd__tp_close(c);
	return NULL;
}

int liar_start(struct liar *lr)
{
	struct mfd_uri u;
	char err[200];
	int r;

	r = mfd__uri_parse("tcp:127.0.0.1:0", &u, err, sizeof(err));
	if (!r)
		r = mfd__tcp_ops.listen(&u, &lr->l, err, sizeof(err));
	if (r)
		return r;
	r = -pthread_create(&lr->t, NULL, liar_main, lr);
	if (r)
		mfd__tp_listener_close(lr->l);
	return r;
}

int liar_sender(struct liar *lr, const struct mfd_config *cfg, uint8_t *src,
		uint64_t len, struct mfd_session **tx)
{
	struct mfd_config c = *cfg;
	char err[200];
	int r;

	c.uri = lr->l->uri;
	c.channels = 1;
	r = mfd_session_new(&c, MFD_ROLE_SEND, tx, err, sizeof(err));
	if (r)
		return r;
	r = mfd_session_add_region(*tx, "ram", src, len, false);
	return r < 0 ? r : 0;
}

void liar_stop(struct liar *lr)
{
	pthread_join(lr->t, NULL);
	mfd__tp_listener_close(lr->l);
}

int raw_send_pages(struct mfd_conn *c, const struct mfd_hdr *h,
		   const uint64_t *off)
{
	uint8_t buf[MFD_HDR_SIZE + 8 * 1024];
	uint32_t n = h->normal + h->zero;

	if (n > 1024)
		n = 1024;
	mfd__hdr_encode(h, buf);
	mfd__offsets_encode(off, n, buf + MFD_HDR_SIZE);
	return mfd__tp_send_buf(c, buf, MFD_HDR_SIZE + 8 * (size_t)n);
}

int run_transfer(const struct mfd_config *cfg, const char *listen_uri,
		 uint64_t len, unsigned rounds, page_fill_fn fill,
		 struct mfd_stats *st)
{
	uint32_t ps = cfg->page_size;
	uint64_t pages = len / ps, seed = 0x5eed ^ len ^ rounds, n;
	uint8_t *src = guarded_alloc(len), *dst = guarded_alloc(len);
	uint64_t *subset = calloc(pages / 10 + 1, sizeof(uint64_t));
	uint8_t *picked = malloc((pages + 7) / 8);
	struct pair p;
	int r = -ENOMEM;

	if (!src || !dst || !subset || !picked)
		goto out;
	for (uint64_t i = 0; i < pages; i++)
		if (test_rng(&seed) % 8)
			fill(src + i * ps, ps, &seed);
	r = pair_start(&p, cfg, listen_uri, src, dst, len);
	if (!r)
		r = mfd_send_region(p.tx, p.region);
	if (!r)
		r = mfd_send_sync(p.tx);
	for (unsigned k = 1; !r && k < rounds; k++) {
		n = pages / 10 + 1;
		/* distinct pages: a sender queues a page once per round, as a
		 * dirty bitmap does (twice would race two channels' writes) */
		memset(picked, 0, (pages + 7) / 8);
		for (uint64_t i = 0; i < n; i++) {
			uint64_t pg = test_rng(&seed) % pages;
			uint8_t *page;

			while (picked[pg / 8] & (1u << (pg % 8)))
				pg = (pg + 1) % pages;
			picked[pg / 8] |= (uint8_t)(1u << (pg % 8));
			page = src + pg * ps;

			if (test_rng(&seed) % 4 == 0)
				memset(page, 0, ps);
			else
				fill(page, ps, &seed);
			subset[i] = pg * ps;
		}
		r = mfd_send_pages(p.tx, p.region, subset, n);
		if (!r)
			r = mfd_send_sync(p.tx);
	}
	if (r)
		fprintf(stderr, "sender: %s\n",
			p.tx ? mfd_session_error(p.tx) : "not started");
	else
		r = pair_finish(&p);
	if (!r && memcmp(src, dst, len)) {
		fprintf(stderr, "the receiver's memory differs\n");
		r = -EIO;
	}
	if (st && p.tx)
		mfd_session_stats(p.tx, st);
	pair_free(&p);
out:
	guarded_free(src, len);
	guarded_free(dst, len);
	free(subset);
	free(picked);
	return r;
}

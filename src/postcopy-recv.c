/* SPDX-License-Identifier: MIT */
/*
 * postcopy-recv.c - the receiver's postcopy. At the switch (the POSTCOPY
 * barrier, every precopy page in place) the regions are put under
 * userfaultfd and the pages still to come dropped (private anonymous
 * memory, or shmem: memfd, tmpfs); from then on every page
 * is placed atomically with UFFDIO_COPY, whether the stream or the urgent
 * channel brings it, so the first copy wins and a later one meets EEXIST
 * and is dropped. The fault thread (mfd-fault) turns faults into
 * requests on the urgent channel; the urgent thread (mfd-urgent) reads
 * their answers.
 */
#include "config.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "array.h"
#include "session.h"

/* How often the fault thread looks at the session when no fault comes:
 * the bound on noticing a stop or an overdue answer. */
#define FAULT_POLL_MS 50

static int uffd_open(char *err, size_t errlen)
{
	struct uffdio_api api = { .api = UFFD_API };
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	if (fd < 0) {
		int e = errno;

		snprintf(err, errlen,
			 "userfaultfd: %s (postcopy needs root, or "
			 "vm.unprivileged_userfaultfd = 1)",
			 strerror(e));
		return -e;
	}
	if (ioctl(fd, UFFDIO_API, &api)) {
		int e = errno;

		snprintf(err, errlen, "UFFDIO_API: %s", strerror(e));
		close(fd);
		return -e;
	}
	return fd;
}

int mfd__pc_uffd_probe(char *err, size_t errlen)
{
	int fd = uffd_open(err, errlen);

	if (fd < 0)
		return fd;
	close(fd);
	return 0;
}

static uint64_t payload_words(const struct mfd_session *s)
{
	uint64_t n = 0;

	for (int i = 0; i < s->nregions; i++)
		n += mfd__dirty_map_words(s->regions[i].length,
					  s->cfg.page_size);
	return n;
}

int mfd__pc_recv_maps(struct mfd_session *s, struct mfd_channel *ch)
{
	struct mfd_postcopy *pc = s->pc;
	uint32_t len = ch->pkt.hdr.payload_len, ps = s->cfg.page_size;
	uint64_t want = ch->index == 0 ? 8 * payload_words(s) : 0;
	int r;

	if (len != want) {
		mfd__session_fail(s, (int)ch->index, -EBADMSG,
				  "POSTCOPY with a payload of %u bytes "
				  "(expected %llu)",
				  len, (unsigned long long)want);
		return -EBADMSG;
	}
	for (int i = 0; ch->index == 0 && i < s->nregions; i++) {
		const struct mfd_region *rg = &s->regions[i];
		uint64_t words = mfd__dirty_map_words(rg->length, ps);
		uint64_t pages = rg->length / ps, *m;

		m = pc->map[i] = calloc(words, 8);
		if (!m) {
			mfd__session_fail(s, 0, -ENOMEM,
					  "no memory for the postcopy map");
			return -ENOMEM;
		}
		r = mfd__tp_recv_buf(ch->conn, m, words * 8);
		if (r)
			return r;
		for (uint64_t w = 0; w < words; w++)
			m[w] = be64toh(m[w]);
		if (pages % 64 && m[words - 1] >> (pages % 64)) {
			mfd__session_fail(s, 0, -EBADMSG,
					  "POSTCOPY map of region '%s' names "
					  "page %llu past its end (%llu pages)",
					  rg->name,
					  (unsigned long long)((words - 1) * 64 +
							       64 - __builtin_clzll(m[words - 1]) - 1),
					  (unsigned long long)pages);
			return -EBADMSG;
		}
	}
	mfd__stat_add(&ch->st.bytes, MFD_HDR_SIZE + (uint64_t)len);
	return 0;
}

/*
 * The switch drops single pages. A page dropped out of a transparent huge
 * page frees nothing: the kernel splits the huge page only later, under
 * memory pressure, so the stale pages stay allocated next to the new ones
 * the stream places, and those come from memory nobody touched for long
 * (on a virtual machine that hands freed memory back to its host, 2-3x
 * dearer to fill). QEMU's destination, too, turns huge pages off when
 * postcopy may come. Asked before the first page arrives, so that the
 * precopy rounds fault small pages; memory already in huge pages keeps
 * them. Best effort: a region where the kernel refuses (no THP) is fine.
 */
void mfd__pc_no_huge_pages(const struct mfd_session *s)
{
	for (int i = 0; i < s->nregions; i++)
		(void)madvise(s->regions[i].mem, s->regions[i].length,
			      MADV_NOHUGEPAGE);
}

/* Runs of pages dropped by one system call. */
#define DROP_BATCH 512

/*
 * Drop a batch of runs: one process_madvise() for all of them, which
 * flushes the TLB once (a third of the time of one madvise() per run
 * here), or where the kernel does not take MADV_DONTNEED there, one
 * madvise() per run. 0 or -errno.
 */
static int drop_runs(int pidfd, const struct iovec *iov, size_t n)
{
	size_t bytes = 0;

	for (size_t k = 0; k < n; k++)
		bytes += iov[k].iov_len;
#ifdef SYS_process_madvise
	if (pidfd >= 0 && syscall(SYS_process_madvise, pidfd, iov, n,
				  MADV_DONTNEED, 0) == (long)bytes)
		return 0;
#endif
	for (size_t k = 0; k < n; k++)
		if (madvise(iov[k].iov_base, iov[k].iov_len, MADV_DONTNEED))
			return -errno;
	return 0;
}

/* How a region's pages are dropped: found on its first run. */
enum drop_kind {
	DROP_UNKNOWN,
	DROP_ANON,  /* MADV_DONTNEED: private anonymous memory */
	DROP_SHMEM, /* MADV_REMOVE: a shared mapping of shmem (memfd, tmpfs) */
};

static bool resident(const struct mfd_postcopy *pc, void *page)
{
	unsigned char in_core = 1;

	return mincore(page, pc->sys_page, &in_core) || (in_core & 1);
}

/*
 * Take the runs out of their shmem file. A hole punched into part of a
 * huge page that cannot be split is zeroed instead of freed, and would
 * never fault: every page must be gone afterwards, which mincore() says.
 */
static int remove_runs(const struct mfd_postcopy *pc, const struct iovec *iov,
		       size_t n)
{
	unsigned char vec[256];

	for (size_t k = 0; k < n; k++) {
		uint8_t *base = iov[k].iov_base;
		uint64_t pages = iov[k].iov_len / pc->sys_page;

		if (madvise(base, iov[k].iov_len, MADV_REMOVE))
			return -errno;
		for (uint64_t pg = 0; pg < pages; pg += sizeof(vec)) {
			uint64_t c = pages - pg < sizeof(vec) ? pages - pg
							      : sizeof(vec);

			if (mincore(base + pg * pc->sys_page,
				    c * pc->sys_page, vec))
				return -errno;
			for (uint64_t j = 0; j < c; j++)
				if (vec[j] & 1)
					return -EBUSY;
		}
	}
	return 0;
}

/*
 * Drop a batch of runs so that they fault. MADV_DONTNEED makes private
 * anonymous pages missing; a shared mapping keeps them in its file, and
 * MADV_REMOVE takes them out of it (shmem: memfd, tmpfs). mincore() on
 * the batch's first page tells which the region is, once: a page still
 * there after both is memory postcopy cannot take (a private mapping of
 * a file, whose pages show through).
 */
static int drop_batch(struct mfd_postcopy *pc, int pidfd,
		      const struct iovec *iov, size_t n, enum drop_kind *kind)
{
	int r;

	if (*kind == DROP_SHMEM)
		return remove_runs(pc, iov, n);
	r = drop_runs(pidfd, iov, n);
	if (r || *kind == DROP_ANON)
		return r;
	if (!resident(pc, iov[0].iov_base)) {
		*kind = DROP_ANON;
		return 0;
	}
	r = remove_runs(pc, iov, n);
	if (r)
		return r;
	*kind = DROP_SHMEM;
	return 0;
}

/* Drop the pages still to come (the map's) of region i. */
static int drop_pages(struct mfd_session *s, int i, int pidfd, char *err,
		      size_t errlen)
{
	const struct mfd_region *rg = &s->regions[i];
	uint64_t *m = s->pc->map[i], ps = s->cfg.page_size;
	uint64_t pages = rg->length / ps;
	struct iovec iov[DROP_BATCH];
	enum drop_kind kind = DROP_UNKNOWN;
	size_t n = 0;
	int r;

	for (uint64_t pg = 0; pg <= pages;) {
		uint64_t end = pg;

		if (pg < pages && !(m[pg / 64] >> (pg % 64) & 1)) {
			pg++;
			continue;
		}
		while (end < pages && (m[end / 64] >> (end % 64) & 1))
			end++;
		if (end > pg)
			iov[n++] = (struct iovec){ rg->mem + pg * ps,
						   (end - pg) * ps };
		if (n && (n == DROP_BATCH || end == pages)) {
			r = drop_batch(s->pc, pidfd, iov, n, &kind);
			if (r == -EBUSY) {
				snprintf(err, errlen,
					 "region '%s': a page stayed in its "
					 "file after MADV_REMOVE (part of a "
					 "huge page?): postcopy cannot drop it",
					 rg->name);
				return -EINVAL;
			}
			if (r) {
				snprintf(err, errlen,
					 "region '%s' is neither private "
					 "anonymous memory nor a shared mapping "
					 "of shmem (memfd, tmpfs): postcopy "
					 "cannot drop its pages (madvise: %s)",
					 rg->name, strerror(-r));
				return -EINVAL;
			}
			n = 0;
		}
		pg = end == pages ? pages + 1 : end;
	}
	return 0;
}

/*
 * Put the regions under userfaultfd, missing mode: a missing page of
 * private anonymous memory or of shmem faults to us, and UFFDIO_COPY /
 * UFFDIO_ZEROPAGE place it in both (for shmem into the file itself, so
 * UFFDIO_CONTINUE's second mapping is not needed). Memory of any other
 * kind (a file on disk) is refused here, before a page is dropped.
 */
static int register_regions(struct mfd_session *s, char *err, size_t errlen)
{
	struct mfd_postcopy *pc = s->pc;
	uint64_t need = 1ull << _UFFDIO_COPY | 1ull << _UFFDIO_ZEROPAGE;

	for (int i = 0; i < s->nregions; i++) {
		struct uffdio_register reg = {
			.range = { .start = (uintptr_t)s->regions[i].mem,
				   .len = s->regions[i].length },
			.mode = UFFDIO_REGISTER_MODE_MISSING,
		};

		errno = 0;
		if (ioctl(pc->uffd, UFFDIO_REGISTER, &reg) ||
		    (reg.ioctls & need) != need) {
			snprintf(err, errlen,
				 "region '%s' cannot be put under "
				 "userfaultfd: %s (postcopy needs private "
				 "anonymous memory or a shared mapping of "
				 "shmem: memfd, tmpfs)",
				 s->regions[i].name,
				 errno ? strerror(errno) : "no UFFDIO_COPY");
			pc->registered = true; /* undo what was */
			return -EINVAL;
		}
		pc->registered = true;
	}
	return 0;
}

static void *fault_main(void *arg);
static void *urgent_main(void *arg);

static int start_thread(pthread_t *t, bool *started, void *(*fn)(void *),
			struct mfd_session *s, const char *name, char *err,
			size_t errlen)
{
	int r = pthread_create(t, NULL, fn, s);

	if (r) {
		snprintf(err, errlen, "pthread_create: %s", strerror(r));
		return -r;
	}
	*started = true;
	pthread_setname_np(*t, name);
	return 0;
}

int mfd__pc_switch(struct mfd_session *s, char *err, size_t errlen)
{
	struct mfd_postcopy *pc = s->pc;
	uint32_t ps = s->cfg.page_size, ppp = s->cfg.pages_per_packet;
	int r = 0, pidfd;

	if (ps < pc->sys_page) {
		snprintf(err, errlen,
			 "postcopy needs pages of at least the system's %llu "
			 "bytes (the session has %u)",
			 (unsigned long long)pc->sys_page, ps);
		return -EINVAL;
	}
	for (unsigned i = 0; i < mfd__nconns(s); i++) {
		struct mfd_channel *ch = &s->ch[i];

		ch->pc_offsets = calloc(ppp, sizeof(uint64_t));
		ch->pc_buf = malloc((size_t)ppp * ps);
		if (!ch->pc_offsets || !ch->pc_buf) {
			snprintf(err, errlen, "no memory for postcopy buffers");
			return -ENOMEM;
		}
	}
	r = uffd_open(err, errlen);
	if (r < 0)
		return r;
	pc->uffd = r;
	r = register_regions(s, err, errlen);
	if (r)
		return r;
	/* The drop takes time in proportion to the pages (16 ms for 100 000
	 * scattered ones here): the lock is free meanwhile, for statistics
	 * and a cancel. The other channels wait at the barrier; a failure
	 * unregisters the regions, and is seen once the lock is back. */
	pthread_mutex_unlock(&s->lock);
	/* fails on kernels before 5.3: then drop_runs() goes run by run */
	pidfd = (int)syscall(SYS_pidfd_open, getpid(), 0);
	for (int i = 0; i < s->nregions && !r; i++)
		r = drop_pages(s, i, pidfd, err, errlen);
	if (pidfd >= 0)
		close(pidfd);
	pthread_mutex_lock(&s->lock);
	if (!r && s->failed) {
		snprintf(err, errlen, "the session failed during the switch");
		r = -ECANCELED;
	}
	if (r)
		return r;
	/* requests and answers wait as long as the stream lives: the
	 * channels time a dead sender out, and overdue answers are the
	 * fault thread's */
	r = mfd__tp_set_timeout(s->urgent->conn, 0);
	if (r) {
		snprintf(err, errlen, "urgent channel: %s",
			 s->urgent->conn->err);
		return r;
	}
	r = start_thread(&pc->fault_thread, &pc->fault_started, fault_main,
			 s, "mfd-fault", err, errlen);
	if (!r)
		r = start_thread(&pc->urgent_thread, &pc->urgent_started,
				 urgent_main, s, "mfd-urgent", err, errlen);
	if (r)
		return r;
	pc->switched = true;
	pthread_cond_broadcast(&s->pc_cond);
	return 0;
}

void mfd__pc_complete(struct mfd_session *s)
{
	s->pc->complete = true;
}

/* Place len bytes at dst from src, page by page where another copy was
 * there first. Returns 0 or -errno, with the bytes placed in *placed. */
static int copy_run(struct mfd_postcopy *pc, uint8_t *dst, const uint8_t *src,
		    uint64_t len, uint64_t *placed)
{
	uint64_t pos = 0;

	while (pos < len) {
		struct uffdio_copy c = { .dst = (uintptr_t)dst + pos,
					 .src = (uintptr_t)src + pos,
					 .len = len - pos };

		if (!ioctl(pc->uffd, UFFDIO_COPY, &c)) {
			*placed += len - pos;
			return 0;
		}
		if (c.copy > 0) { /* up to a page that was there */
			*placed += (uint64_t)c.copy;
			pos += (uint64_t)c.copy;
		} else if (errno == EEXIST) {
			pos += pc->sys_page;
		} else if (errno != EAGAIN) {
			return -errno;
		}
	}
	return 0;
}

static int zero_run(struct mfd_postcopy *pc, uint8_t *dst, uint64_t len,
		     uint64_t *placed)
{
	uint64_t pos = 0;

	while (pos < len) {
		struct uffdio_zeropage z = {
			.range = { .start = (uintptr_t)dst + pos,
				   .len = len - pos }
		};

		if (!ioctl(pc->uffd, UFFDIO_ZEROPAGE, &z)) {
			*placed += len - pos;
			return 0;
		}
		if (z.zeropage > 0) {
			*placed += (uint64_t)z.zeropage;
			pos += (uint64_t)z.zeropage;
		} else if (errno == EEXIST) {
			pos += pc->sys_page;
		} else if (errno != EAGAIN) {
			return -errno;
		}
	}
	return 0;
}

static uint64_t us_since(const struct timespec *t0)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (uint64_t)((now.tv_sec - t0->tv_sec) * 1000000 +
			  (now.tv_nsec - t0->tv_nsec) / 1000);
}

/* An answer arrived: its pages' requests are done. */
static void answered(struct mfd_postcopy *pc, uint32_t region,
		     const uint64_t *off, uint32_t n)
{
	pthread_mutex_lock(&pc->lock);
	for (size_t k = 0; k < pc->npending;) {
		struct mfd_pc_request *q = &pc->pending[k];
		bool hit = false;
		uint32_t *lat;
		uint64_t us;

		for (uint32_t i = 0; i < n && !hit; i++)
			hit = q->region == region && q->offset == off[i];
		if (!hit) {
			k++;
			continue;
		}
		/* without memory, a latency goes unrecorded */
		lat = mfd__grow(pc->lat_us, &pc->lat_cap, pc->nlat, 1024,
			       sizeof(*lat));
		if (lat) {
			pc->lat_us = lat;
			us = us_since(&q->t0);
			lat[pc->nlat++] = us > UINT32_MAX ? UINT32_MAX
							  : (uint32_t)us;
		}
		*q = pc->pending[--pc->npending];
	}
	pthread_mutex_unlock(&pc->lock);
}

/* How many of off[i..n) are adjacent pages, from off[i] on: one
 * placement covers them. */
static uint32_t adjacent(const uint64_t *off, uint32_t i, uint32_t n,
			 uint32_t ps)
{
	uint32_t run = 1;

	while (i + run < n && off[i + run] == off[i] + (uint64_t)run * ps)
		run++;
	return run;
}

int mfd__pc_place(struct mfd_session *s, struct mfd_channel *ch,
		  const struct mfd_packet *p, const uint64_t *off,
		  const uint8_t *buf)
{
	struct mfd_postcopy *pc = s->pc;
	struct mfd_region *rg = &s->regions[p->hdr.region];
	uint32_t ps = s->cfg.page_size, normal = p->hdr.normal;
	uint64_t placed = 0;
	int r = 0;

	for (uint32_t i = 0, run; i < normal && !r; i += run) {
		run = adjacent(off, i, normal, ps);
		r = copy_run(pc, rg->mem + off[i], buf + (size_t)i * ps,
			     (uint64_t)run * ps, &placed);
	}
	for (uint32_t i = 0, run; i < p->hdr.zero && !r; i += run) {
		run = adjacent(off + normal, i, p->hdr.zero, ps);
		r = zero_run(pc, rg->mem + off[normal + i],
			     (uint64_t)run * ps, &placed);
	}
	if (r) {
		mfd__session_fail(s, (int)ch->index, r,
				  "placing packet %llu in region '%s': %s",
				  (unsigned long long)p->hdr.packet_num,
				  rg->name, strerror(-r));
		return r;
	}
	if (ch == s->urgent) {
		mfd__stat_add(&ch->st.postcopy_demand_pages, placed / ps);
		answered(pc, p->hdr.region, off, normal + p->hdr.zero);
	} else {
		mfd__stat_add(&ch->st.postcopy_stream_pages, placed / ps);
	}
	return 0;
}

/* Ask for the page at off of region i, unless it was asked for already.
 * Fault thread. */
static int request(struct mfd_session *s, uint32_t i, uint64_t off)
{
	struct mfd_postcopy *pc = s->pc;
	struct mfd_hdr h = { .type = MFD_PKT_REQUEST, .region = i,
			     .payload_len = MFD_REQUEST_SIZE };
	uint8_t buf[MFD_HDR_SIZE + MFD_REQUEST_SIZE];
	struct mfd_pc_request *pending;
	struct timespec now;
	int r;

	clock_gettime(CLOCK_MONOTONIC, &now);
	pthread_mutex_lock(&pc->lock);
	for (size_t k = 0; k < pc->npending; k++)
		if (pc->pending[k].region == i && pc->pending[k].offset == off) {
			pthread_mutex_unlock(&pc->lock);
			return 0;
		}
	pending = mfd__grow(pc->pending, &pc->pending_cap, pc->npending, 64,
			   sizeof(*pending));
	if (!pending) {
		pthread_mutex_unlock(&pc->lock);
		mfd__session_fail(s, (int)s->nchannels, -ENOMEM,
				  "no memory for a page request");
		return -ENOMEM;
	}
	pc->pending = pending;
	pc->pending[pc->npending++] = (struct mfd_pc_request){ i, off, now };
	h.packet_num = pc->next_request++;
	pthread_mutex_unlock(&pc->lock);
	mfd__hdr_encode(&h, buf);
	mfd__request_encode(off, s->cfg.page_size, buf + MFD_HDR_SIZE);
	r = mfd__tp_send_buf(s->urgent->conn, buf, sizeof(buf));
	if (r)
		return r;
	mfd__stat_add(&s->urgent->st.postcopy_requests, 1);
	mfd__stat_add(&s->urgent->st.bytes, sizeof(buf));
	return 0;
}

/* The oldest request waited longer than the timeout: fail. */
static bool overdue(struct mfd_session *s)
{
	struct mfd_postcopy *pc = s->pc;
	unsigned t = s->cfg.timeout_ms;
	struct mfd_pc_request late = { 0 };
	bool hit = false;

	pthread_mutex_lock(&pc->lock);
	for (size_t k = 0; t && k < pc->npending && !hit; k++)
		if (us_since(&pc->pending[k].t0) > (uint64_t)t * 1000) {
			late = pc->pending[k];
			hit = true;
		}
	pthread_mutex_unlock(&pc->lock);
	if (hit)
		mfd__session_fail(s, (int)s->nchannels, -ETIMEDOUT,
				  "the request for page 0x%llx of region '%s' "
				  "was not answered within %u ms",
				  (unsigned long long)late.offset,
				  s->regions[late.region].name, t);
	return hit;
}

static int on_fault(struct mfd_session *s, const struct uffd_msg *m,
		    bool complete)
{
	uint64_t addr = m->arg.pagefault.address, ps = s->cfg.page_size;

	for (int i = 0; i < s->nregions; i++) {
		struct mfd_region *rg = &s->regions[i];
		uint64_t off;

		if (addr < (uintptr_t)rg->mem ||
		    addr - (uintptr_t)rg->mem >= rg->length)
			continue;
		off = (addr - (uintptr_t)rg->mem) & ~(ps - 1);
		if (complete) { /* never sent, and still missing: zeros */
			uint64_t placed = 0;

			return zero_run(s->pc, rg->mem + off, ps, &placed);
		}
		return request(s, (uint32_t)i, off);
	}
	return 0;
}

static void *fault_main(void *arg)
{
	struct mfd_session *s = arg;
	struct mfd_postcopy *pc = s->pc;
	struct pollfd pfd = { .fd = pc->uffd, .events = POLLIN };

	for (;;) {
		struct uffd_msg msg[16];
		bool stop, complete;
		ssize_t n;
		int r = 0;

		pthread_mutex_lock(&s->lock);
		stop = pc->stop || s->failed;
		complete = pc->complete;
		pthread_mutex_unlock(&s->lock);
		if (stop || overdue(s))
			break;
		if (poll(&pfd, 1, FAULT_POLL_MS) <= 0)
			continue;
		n = read(pc->uffd, msg, sizeof(msg));
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			r = -errno;
		for (ssize_t k = 0; k < n / (ssize_t)sizeof(msg[0]) && !r; k++)
			if (msg[k].event == UFFD_EVENT_PAGEFAULT)
				r = on_fault(s, &msg[k], complete);
		if (r) {
			/* every page may have come meanwhile: a request that
			 * cannot go out then is no failure; a sender that
			 * failed closed the urgent channel and says why on
			 * the bulk ones */
			if (r == -EPIPE || r == -ECONNRESET)
				mfd__wait_for_reason(s);
			pthread_mutex_lock(&s->lock);
			complete = pc->complete || pc->stop;
			pthread_mutex_unlock(&s->lock);
			if (!complete)
				mfd__session_fail(s, (int)s->nchannels, r,
						  "page request: %s",
						  s->urgent->conn->err[0]
							  ? s->urgent->conn->err
							  : strerror(-r));
			break;
		}
	}
	return NULL;
}

/* The urgent channel failed: the session's error unless postcopy was
 * stopped or every page is in place already. */
static void urgent_failed(struct mfd_session *s, struct mfd_channel *ch, int r)
{
	bool quiet;

	/* a sender that failed closed this channel too: its reason comes
	 * on the bulk channels */
	if (r == -EPIPE || r == -ECONNRESET)
		mfd__wait_for_reason(s);
	pthread_mutex_lock(&s->lock);
	quiet = s->pc->stop || s->pc->complete;
	pthread_mutex_unlock(&s->lock);
	if (!quiet)
		mfd__session_fail(s, (int)ch->index, r, "urgent channel: %s",
				  ch->conn->err);
}

/* Answers, until the stop or the session's end. */
static void *urgent_main(void *arg)
{
	struct mfd_session *s = arg;
	struct mfd_channel *ch = s->urgent;
	struct mfd_packet *p = &ch->pkt;
	struct mfd_limits lim;
	char err[200];
	int r;

	mfd__session_limits(s, &lim);
	for (;;) {
		r = mfd__tp_recv_buf(ch->conn, p->wire, MFD_HDR_SIZE);
		if (r) {
			urgent_failed(s, ch, r);
			break;
		}
		r = mfd__hdr_decode(p->wire, &lim, &p->hdr, err, sizeof(err));
		if (!r && p->hdr.type != MFD_PKT_PAGES) {
			snprintf(err, sizeof(err),
				 "packet type %u on the urgent channel "
				 "(expected answers, PAGES)",
				 p->hdr.type);
			r = -EPROTO;
		}
		if (r) {
			mfd__session_fail(s, (int)ch->index, r, "%s", err);
			break;
		}
		/* a transport error in the middle of an answer is not yet
		 * the session's: no answer would be read any more while the
		 * fault thread asks on */
		r = mfd__recv_pages(s, ch);
		if (r) {
			urgent_failed(s, ch, r);
			break;
		}
	}
	return NULL;
}

MFD_EXTERN int mfd_recv_postcopy_wait(struct mfd_session *s,
				      unsigned timeout_ms)
{
	struct mfd_deadline d;
	int r = 0;

	if (s->role != MFD_ROLE_RECV)
		return -EINVAL;
	mfd__deadline_start(&d, timeout_ms, "the postcopy switch");
	pthread_mutex_lock(&s->lock);
	while (!s->failed && !(s->pc && s->pc->switched) && !s->t_end.tv_sec &&
	       !s->t_end.tv_nsec) {
		unsigned left = mfd__deadline_left(&d);

		if (timeout_ms && !left) {
			r = -ETIMEDOUT;
			break;
		}
		mfd__timed_wait(&s->pc_cond, &s->lock, left);
	}
	if (!r)
		r = s->failed ? s->err : s->pc && s->pc->switched ? 0 : 1;
	pthread_mutex_unlock(&s->lock);
	return r;
}

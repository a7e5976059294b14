/* SPDX-License-Identifier: MIT */
/*
 * rdma-mr.c - protection domains and memory registrations of the rdma:
 * transport, and the registered rings of the byte stream.
 *
 * An rkey is valid on every QP of its protection domain, so the domains
 * follow the sessions: each listener (one per receiving session) has its
 * own, shared by the connections it accepts, and the region
 * registrations live in it; nothing else is ever in it. The connections
 * of a sending session share one domain per device, kept in the
 * session's mfd_uri.session_state, which holds no registration with
 * remote access at all.
 * A region is registered once per domain however many channels use it,
 * in slices registered in parallel (see SLICE_MAX).
 */
#include "config.h"

#include <linux/capability.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "rdma-int.h"

/* Protects every domain list and registration list. */
static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;

struct dev_ent *mfd__rd_dev_get(void **list, struct ibv_context *verbs)
{
	struct dev_ent *d;

	pthread_mutex_lock(&table_lock);
	for (d = *list; d; d = d->next)
		if (d->verbs == verbs)
			break;
	if (!d) {
		d = calloc(1, sizeof(*d));
		if (d) {
			d->verbs = verbs;
			d->pd = ibv_alloc_pd(verbs);
			if (err_ptr(d->pd)) {
				free(d);
				d = NULL;
			} else {
				d->list = list;
				d->next = *list;
				*list = d;
			}
		}
	}
	if (d)
		d->refs++;
	pthread_mutex_unlock(&table_lock);
	return d;
}

static void dev_unlink(struct dev_ent *d)
{
	struct dev_ent *e;

	if (!d->list)
		return;
	if (*d->list == d) {
		*d->list = d->next;
	} else {
		for (e = *d->list; e->next != d; e = e->next)
			;
		e->next = d->next;
	}
	d->list = NULL;
}

void mfd__rd_dev_put(struct dev_ent *d)
{
	if (!d)
		return;
	pthread_mutex_lock(&table_lock);
	if (--d->refs == 0) {
		dev_unlink(d);
		ibv_dealloc_pd(d->pd);
		free(d);
	}
	pthread_mutex_unlock(&table_lock);
}

/* The listener's list goes with it; its connections keep their domain
 * until the last of them is closed. */
void mfd__rd_devs_release(void **list)
{
	pthread_mutex_lock(&table_lock);
	while (*list)
		dev_unlink((struct dev_ent *)*list);
	pthread_mutex_unlock(&table_lock);
}

/* Whether this process may lock memory beyond RLIMIT_MEMLOCK. */
static bool can_ipc_lock(void)
{
	struct __user_cap_header_struct h = {
		.version = _LINUX_CAPABILITY_VERSION_3,
	};
	struct __user_cap_data_struct c[2] = { { 0 } };

	if (syscall(SYS_capget, &h, c))
		return false;
	return c[CAP_IPC_LOCK / 32].effective & (1u << CAP_IPC_LOCK % 32);
}

/* Bytes this process has pinned (VmPin), what RLIMIT_MEMLOCK counts
 * registrations against; 0 when unknown. */
static uint64_t pinned_bytes(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	unsigned long long kb = 0;
	char line[128];

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmPin: %llu kB", &kb) == 1)
			break;
	fclose(f);
	return kb << 10;
}

/*
 * ibv_reg_mr failed with r: say why in err. The kernel refuses with
 * ENOMEM (EPERM, EAGAIN on some) when pinning len more bytes would pass
 * RLIMIT_MEMLOCK; only then is raising the limit the remedy.
 */
void mfd__rd_reg_error(int r, uint64_t len, const char *what, char *err,
		       size_t errlen)
{
	struct rlimit rl;
	uint64_t pinned;

	if ((r == -ENOMEM || r == -EPERM || r == -EAGAIN) &&
	    !getrlimit(RLIMIT_MEMLOCK, &rl) && rl.rlim_cur != RLIM_INFINITY &&
	    !can_ipc_lock()) {
		pinned = pinned_bytes();
		if (pinned + len > rl.rlim_cur) {
			/* in KiB, as ulimit -l takes it */
			snprintf(err, errlen,
				 "ibv_reg_mr of %llu bytes for %s: "
				 "RLIMIT_MEMLOCK is %llu KiB, %llu KiB pinned "
				 "already, %llu KiB needed: raise it with "
				 "ulimit -l",
				 (unsigned long long)len, what,
				 (unsigned long long)rl.rlim_cur >> 10,
				 (unsigned long long)pinned >> 10,
				 (unsigned long long)(pinned + len + 1023) >>
					 10);
			return;
		}
	}
	snprintf(err, errlen, "ibv_reg_mr of %llu bytes for %s: %s",
		 (unsigned long long)len, what, strerror(-r));
}

/*
 * The largest registration: pinning goes faster in several calls at
 * once, and some NICs (mlx5) halve WRITE throughput into registrations
 * beyond about 4 GiB. MFD_RDMA_SLICE (bytes, a multiple of 4096) makes it
 * smaller, for tests that cross a slice boundary with little memory.
 */
#define SLICE_MAX (2ull << 30)
#define REG_THREADS 16

static uint64_t slice_size(void)
{
	const char *e = getenv("MFD_RDMA_SLICE");
	unsigned long long v;
	char *end;

	if (!e || !*e)
		return SLICE_MAX;
	v = strtoull(e, &end, 0);
	if (*end || !v || v % 4096 || v > SLICE_MAX)
		return SLICE_MAX;
	return v;
}

/*
 * The slices of one registration, taken in ascending order by up to
 * REG_THREADS threads, which run while the registration is used: a slice
 * is usable as soon as it is registered (mfd__rd_mr_slice()).
 */
struct reg_job {
	pthread_t t[REG_THREADS];
	unsigned nt;
	bool joined;   /* under lock: t[] were joined */
	unsigned next; /* the next slice to take (atomic) */
	bool cancel;   /* atomic: the registration is being dropped */
	int64_t t0;
	pthread_mutex_t lock;
	pthread_cond_t cond; /* CLOCK_MONOTONIC; a thread finished */
	unsigned running;    /* under lock: threads still registering */
	int err;	     /* under lock (and atomic): the first failure */
	uint64_t ns;	     /* under lock: how long, once all finished */
};

static void *reg_worker(void *arg)
{
	struct mr_ent *m = arg;
	struct reg_job *j = m->job;
	unsigned i;
	int r = 0;

	while (!r && !__atomic_load_n(&j->cancel, __ATOMIC_RELAXED) &&
	       (i = __atomic_fetch_add(&j->next, 1, __ATOMIC_RELAXED)) <
		       m->nmrs) {
		uint64_t off = (uint64_t)i * m->slice;
		uint64_t len = m->len - off < m->slice ? m->len - off : m->slice;
		struct ibv_mr *mr = ibv_reg_mr(m->dev->pd, (uint8_t *)m->mem + off,
					       len, m->access);

		r = err_ptr(mr);
		if (!r)
			__atomic_store_n(&m->mrs[i], mr, __ATOMIC_RELEASE);
	}
	pthread_mutex_lock(&j->lock);
	if (r && !j->err) {
		__atomic_store_n(&j->err, r, __ATOMIC_RELEASE);
		/* the others stop at their next slice */
		__atomic_store_n(&j->next, m->nmrs, __ATOMIC_RELAXED);
	}
	if (--j->running == 0)
		j->ns = (uint64_t)(mfd__tp_now_ns() - j->t0);
	pthread_cond_broadcast(&j->cond);
	pthread_mutex_unlock(&j->lock);
	return NULL;
}

/* Start registering every slice of m. */
static int reg_start(struct mr_ent *m)
{
	struct reg_job *j = calloc(1, sizeof(*j));
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	pthread_condattr_t ca;
	unsigned nt = m->nmrs;

	if (!j)
		return -ENOMEM;
	if (cpus > 0 && nt > (unsigned long)cpus)
		nt = (unsigned)cpus;
	if (nt > REG_THREADS)
		nt = REG_THREADS;
	pthread_mutex_init(&j->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&j->cond, &ca);
	pthread_condattr_destroy(&ca);
	j->t0 = mfd__tp_now_ns();
	m->job = j;
	pthread_mutex_lock(&j->lock);
	for (; j->nt < nt; j->nt++) {
		j->running++;
		if (pthread_create(&j->t[j->nt], NULL, reg_worker, m)) {
			j->running--;
			break;
		}
	}
	pthread_mutex_unlock(&j->lock);
	if (j->nt)
		return 0;
	/* no thread to spare: here, at once */
	j->running = 1;
	reg_worker(m);
	return 0;
}

/* Wait for m's threads, calling tick every tick->every_ms meanwhile (so
 * that the caller can keep a waiting peer informed); 0 once every slice
 * is registered, or the first failure. */
static int reg_wait(struct mr_ent *m, const struct reg_tick *tick)
{
	struct reg_job *j = m->job;
	bool join;
	int r = 0;

	pthread_mutex_lock(&j->lock);
	while (j->running) {
		struct timespec ts;

		if (!tick || r) {
			pthread_cond_wait(&j->cond, &j->lock);
			continue;
		}
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += tick->every_ms / 1000;
		ts.tv_nsec += (long)(tick->every_ms % 1000) * 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		if (pthread_cond_timedwait(&j->cond, &j->lock, &ts) ==
		    ETIMEDOUT) {
			pthread_mutex_unlock(&j->lock);
			/* ibv_reg_mr cannot be stopped: keep waiting */
			r = tick->fn(tick->arg);
			pthread_mutex_lock(&j->lock);
		}
	}
	if (!r)
		r = j->err;
	/* the threads are done: their stacks go now, not with m */
	join = !j->joined;
	j->joined = true;
	pthread_mutex_unlock(&j->lock);
	for (unsigned i = 0; join && i < j->nt; i++)
		pthread_join(j->t[i], NULL);
	return r;
}

/* Stop m's threads (each finishes the slice it registers) and drop
 * every slice registered. */
static void reg_drop(struct mr_ent *m)
{
	struct reg_job *j = m->job;

	if (j) {
		__atomic_store_n(&j->cancel, true, __ATOMIC_RELAXED);
		for (unsigned i = 0; !j->joined && i < j->nt; i++)
			pthread_join(j->t[i], NULL);
		pthread_cond_destroy(&j->cond);
		pthread_mutex_destroy(&j->lock);
		free(j);
	}
	for (unsigned i = 0; i < m->nmrs; i++)
		if (m->mrs[i])
			ibv_dereg_mr(m->mrs[i]);
	free(m->mrs);
	free(m);
}

static void mr_unlink(struct mr_ent *m)
{
	struct mr_ent **pp;

	for (pp = &m->dev->mrs; *pp != m; pp = &(*pp)->next)
		;
	*pp = m->next;
}

int mfd__rd_mr_start(struct dev_ent *d, void *mem, uint64_t len, int access,
		     bool *made, struct mr_ent **out)
{
	struct mr_ent *m;
	int r = 0;

	*made = false;
	pthread_mutex_lock(&table_lock);
	for (m = d->mrs; m; m = m->next)
		if (m->mem == mem && m->len == len && m->access == access)
			break;
	if (!m) {
		m = calloc(1, sizeof(*m));
		if (!m) {
			r = -ENOMEM;
			goto out;
		}
		m->access = access;
		m->dev = d;
		m->mem = mem;
		m->len = len;
		m->slice = slice_size();
		m->nmrs = (unsigned)((len + m->slice - 1) / m->slice);
		m->mrs = calloc(m->nmrs ? m->nmrs : 1, sizeof(*m->mrs));
		r = m->mrs ? reg_start(m) : -ENOMEM;
		if (r) {
			free(m->mrs);
			free(m);
			goto out;
		}
		m->next = d->mrs;
		d->mrs = m;
		*made = true;
	}
	m->refs++;
	*out = m;
out:
	pthread_mutex_unlock(&table_lock);
	return r;
}

int mfd__rd_mr_get(struct dev_ent *d, void *mem, uint64_t len, int access,
		   const struct reg_tick *tick, uint64_t *ns,
		   struct mr_ent **out)
{
	bool made;
	int r = mfd__rd_mr_start(d, mem, len, access, &made, out);

	*ns = 0;
	if (r)
		return r;
	r = reg_wait(*out, tick);
	if (r) {
		mfd__rd_mr_put(*out);
		*out = NULL;
	} else if (made) {
		*ns = mfd__rd_mr_ns(*out);
	}
	return r;
}

struct ibv_mr *mfd__rd_mr_slice(struct mr_ent *m, unsigned i)
{
	return __atomic_load_n(&m->mrs[i], __ATOMIC_ACQUIRE);
}

int mfd__rd_mr_error(struct mr_ent *m)
{
	return __atomic_load_n(&m->job->err, __ATOMIC_ACQUIRE);
}

uint64_t mfd__rd_mr_ns(struct mr_ent *m)
{
	uint64_t ns;

	reg_wait(m, NULL);
	pthread_mutex_lock(&m->job->lock);
	ns = m->job->ns;
	pthread_mutex_unlock(&m->job->lock);
	return ns;
}

void mfd__rd_mr_put(struct mr_ent *m)
{
	bool last;

	if (!m)
		return;
	pthread_mutex_lock(&table_lock);
	last = --m->refs == 0;
	if (last)
		mr_unlink(m);
	pthread_mutex_unlock(&table_lock);
	/* outside the lock: the threads may still be pinning */
	if (last)
		reg_drop(m);
}

void mfd__rd_ring_free(struct ring *g)
{
	for (int i = 0; i < 2; i++)
		if (g->mr[i])
			ibv_dereg_mr(g->mr[i]);
	free(g->mem);
}

/* Register buffers [from, to) of the ring, as its MR number `part`. */
static int ring_reg(struct rd_conn *rc, struct ring *g, int part,
		    unsigned from, unsigned to, char *err, size_t errlen)
{
	size_t len = (size_t)(to - from) * BUF_SIZE;
	int r;

	g->mr[part] = ibv_reg_mr(rc->dev->pd, g->mem + (size_t)from * BUF_SIZE,
				 len, IBV_ACCESS_LOCAL_WRITE);
	r = err_ptr(g->mr[part]);
	if (r)
		mfd__rd_reg_error(r, len, "the stream's buffers", err, errlen);
	else
		g->n = to;
	return r;
}

/* The ring's memory, its first RING_START buffers registered. */
int mfd__rd_ring_alloc(struct rd_conn *rc, struct ring *g, char *err,
		       size_t errlen)
{
	int r;

	/* only what is registered is ever touched, so pinned */
	r = -posix_memalign((void **)&g->mem, 4096,
			    (size_t)RING_BUFS * BUF_SIZE);
	if (r) {
		snprintf(err, errlen, "out of memory");
		return r;
	}
	return ring_reg(rc, g, 0, 0, RING_START, err, errlen);
}

/* Register the rest of the ring (once). */
int mfd__rd_ring_grow(struct rd_conn *rc, struct ring *g, char *err,
		      size_t errlen)
{
	return g->n == RING_BUFS
		       ? 0
		       : ring_reg(rc, g, 1, RING_START, RING_BUFS, err, errlen);
}

uint32_t mfd__rd_ring_lkey(const struct ring *g, unsigned i)
{
	return g->mr[i >= RING_START]->lkey;
}

/* The receiving end's landing slots, registered for the peer's writes. */
int mfd__rd_land_alloc(struct rd_conn *rc)
{
	size_t len = (size_t)LAND_SLOTS * LAND_SLOT;
	int r = -posix_memalign((void **)&rc->land_mem, 4096, len);

	if (r)
		return mfd__rd_fail(rc, r, "out of memory");
	rc->land_mr = ibv_reg_mr(rc->dev->pd, rc->land_mem, len,
				 IBV_ACCESS_LOCAL_WRITE |
					 IBV_ACCESS_REMOTE_WRITE);
	r = err_ptr(rc->land_mr);
	if (r) {
		rc->land_mr = NULL;
		mfd__rd_reg_error(r, len, "the landing slots", rc->base.err,
				  sizeof(rc->base.err));
		rc->failed = r;
	}
	return r;
}

/* Ends the peer's access to the slots (revoke, close). */
void mfd__rd_land_free(struct rd_conn *rc)
{
	if (rc->land_mr)
		ibv_dereg_mr(rc->land_mr);
	rc->land_mr = NULL;
	free(rc->land_mem);
	rc->land_mem = NULL;
}

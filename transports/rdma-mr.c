/* SPDX-License-Identifier: MIT */
/*
 * rdma-mr.c - protection domains and memory registrations of the rdma:
 * transport, and the registered rings of the byte stream.
 */
#include "config.h"

#include <pthread.h>
#include <stdlib.h>

#include "rdma-int.h"

static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static struct dev_ent *devs;
static struct mr_ent *mrs;

struct dev_ent *mfd__rd_dev_get(struct ibv_context *verbs)
{
	struct dev_ent *d;

	pthread_mutex_lock(&table_lock);
	for (d = devs; d; d = d->next)
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
				d->next = devs;
				devs = d;
			}
		}
	}
	if (d)
		d->refs++;
	pthread_mutex_unlock(&table_lock);
	return d;
}

void mfd__rd_dev_put(struct dev_ent *d)
{
	struct dev_ent **pp;

	if (!d)
		return;
	pthread_mutex_lock(&table_lock);
	if (--d->refs == 0) {
		for (pp = &devs; *pp != d; pp = &(*pp)->next)
			;
		*pp = d->next;
		ibv_dealloc_pd(d->pd);
		free(d);
	}
	pthread_mutex_unlock(&table_lock);
}

int mfd__rd_mr_get(struct dev_ent *d, void *mem, uint64_t len, int access,
		          struct mr_ent **out)
{
	struct mr_ent *m;
	int r = 0;

	pthread_mutex_lock(&table_lock);
	for (m = mrs; m; m = m->next)
		if (m->dev == d && m->mem == mem && m->len == len &&
		    m->access == access)
			break;
	if (!m) {
		m = calloc(1, sizeof(*m));
		if (!m) {
			r = -ENOMEM;
			goto out;
		}
		m->mr = ibv_reg_mr(d->pd, mem, len, access);
		r = err_ptr(m->mr);
		if (r) {
			free(m);
			goto out;
		}
		m->access = access;
		m->dev = d;
		m->mem = mem;
		m->len = len;
		m->next = mrs;
		mrs = m;
	}
	m->refs++;
	*out = m;
out:
	pthread_mutex_unlock(&table_lock);
	return r;
}

void mfd__rd_mr_put(struct mr_ent *m)
{
	struct mr_ent **pp;

	if (!m)
		return;
	pthread_mutex_lock(&table_lock);
	if (--m->refs == 0) {
		for (pp = &mrs; *pp != m; pp = &(*pp)->next)
			;
		*pp = m->next;
		ibv_dereg_mr(m->mr);
		free(m);
	}
	pthread_mutex_unlock(&table_lock);
}

void mfd__rd_ring_free(struct ring *g)
{
	if (g->mr)
		ibv_dereg_mr(g->mr);
	free(g->mem);
}

int mfd__rd_ring_alloc(struct rd_conn *rc, struct ring *g)
{
	size_t len = (size_t)RING_BUFS * BUF_SIZE;
	int r;

	r = -posix_memalign((void **)&g->mem, 4096, len);
	if (r)
		return r;
	g->mr = ibv_reg_mr(rc->dev->pd, g->mem, len, IBV_ACCESS_LOCAL_WRITE);
	return err_ptr(g->mr);
}


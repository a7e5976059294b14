/* SPDX-License-Identifier: MIT */
/*
 * method-none.c - pages travel as they are. The list points into the
 * region itself, so no page byte is copied in user space on either side:
 * the sender's list goes to writev()/sendmsg() or RDMA WRITEs, and the
 * receiver reads the payload straight into the pages. It keeps no state,
 * so its setup, finish and cleanup ops are left NULL.
 */
#include "config.h"

#include "method.h"

static int none_send_prepare(struct mfd_mctx *m, struct mfd_packet *p)
{
	size_t payload;

	p->hdr.payload_len = p->hdr.normal * m->page_size;
	mfd__packet_seal(p, m->page_size);
	payload = mfd__packet_page_iov(p, m->page_size);
	p->next_packet_size = p->wire_len + payload;
	return 0;
}

static int none_recv_prepare(struct mfd_mctx *m, struct mfd_packet *p)
{
	p->niov = 0;
	mfd__packet_page_iov(p, m->page_size);
	return 0;
}

const struct mfd_method_ops mfd__method_none = {
	.name = "none",
	.send_prepare = none_send_prepare,
	.recv_prepare = none_recv_prepare,
};

// SPDX-License-Identifier: GPL-2.0
/*
 * The block I/O collector: each request's time from issue to the device to
 * completion, in a log2 histogram per (device, op), and its bytes and count
 * charged to the process that submitted it.
 *
 * block_io_start fires in the submitter's context when a request is made
 * from its I/O, so that is where the process is noted; block_rq_issue (often
 * from another context: a plug flush, a kworker) starts the clock; and
 * block_rq_complete (an interrupt) charges everything. Requests in flight
 * wait in an LRU hash keyed by the request's address, so requests that never
 * complete (merged away, or issued before sonde attached) age out instead
 * of filling it.
 *
 * The tracefs variant (last resort) gets no request pointer: it keys a
 * request by its device and first sector, and takes the op from the rwbs
 * text and the bytes from the sector count. Two requests in flight at once
 * on the same sector of a device would share a slot (the later one's start
 * wins), which only skews that pair's latency.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "sonde.h"

char LICENSE[] SEC("license") = "GPL";

struct inflight {
	__u64 issued_ns;
	struct proc_id who;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct inflight);
} block_inflight SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 1024);
	__type(key, struct block_latency_key);
	__type(value, struct sonde_hist);
} block_latency SEC(".maps");

/*
 * Bytes and requests per (process, device, op), double-buffered (sonde.h):
 * a half holds one interval's distinct keys, a few per process name that
 * does I/O.
 */
SONDE_DOUBLE_BUFFERED(block_io, BPF_MAP_TYPE_PERCPU_HASH, 8192, struct block_io_key,
		      struct block_io_value);

SONDE_MAP_FULL_COUNTER(BLOCK_BOUNDED_MAPS);

static __always_inline void on_start(__u64 rq_key)
{
	struct inflight entry = {};

	sonde_current(&entry.who);
	bpf_map_update_elem(&block_inflight, &rq_key, &entry, BPF_ANY);
}

/* A request without a start (a flush the block layer made itself) is
 * charged to whoever issues it. */
static __always_inline void on_issue(__u64 rq_key)
{
	struct inflight *entry = bpf_map_lookup_elem(&block_inflight, &rq_key);
	struct inflight fresh = {};

	if (entry) {
		entry->issued_ns = bpf_ktime_get_ns();
		return;
	}
	sonde_current(&fresh.who);
	fresh.issued_ns = bpf_ktime_get_ns();
	bpf_map_update_elem(&block_inflight, &rq_key, &fresh, BPF_ANY);
}

/* An op above REQ_OP_DISCARD (or OP_UNKNOWN) is not counted. */
#define OP_UNKNOWN 0xff

static __always_inline void on_complete(__u64 rq_key, __u32 dev, __u32 op,
					unsigned int nr_bytes)
{
	__u64 now = bpf_ktime_get_ns();
	struct inflight *entry = bpf_map_lookup_elem(&block_inflight, &rq_key);
	struct block_latency_key latency_key;
	struct block_io_key io_key = {};
	struct block_io_value *io, first = { .bytes = nr_bytes, .ops = 1 };
	void *io_half;

	if (!entry)
		return;
	if (op > REQ_OP_DISCARD)
		goto done;

	if (entry->issued_ns) {
		latency_key.dev = dev;
		latency_key.op = op;
		if (sonde_hist_add(&block_latency, &latency_key, now - entry->issued_ns))
			sonde_count_map_full(&map_full, BLOCK_MAP_LATENCY);
	}
	io_key.who = entry->who;
	io_key.dev = dev;
	io_key.op = op;
	io_half = SONDE_HALF(block_io);
	io = bpf_map_lookup_elem(io_half, &io_key);
	if (io) {
		io->bytes += nr_bytes;
		io->ops += 1;
	} else if (bpf_map_update_elem(io_half, &io_key, &first, BPF_NOEXIST)) {
		sonde_count_map_full(&map_full, BLOCK_MAP_IO);
	}
done:
	bpf_map_delete_elem(&block_inflight, &rq_key);
}

/* Device (packed as the kernel's dev_t) and op read from the request. */
static __always_inline void complete_request(struct request *rq, unsigned int nr_bytes)
{
	struct gendisk *disk = BPF_CORE_READ(rq, q, disk);
	__u32 op = BPF_CORE_READ(rq, cmd_flags) & 0xff;
	__u32 dev = (BPF_CORE_READ(disk, major) << 20) | BPF_CORE_READ(disk, first_minor);

	on_complete((__u64)rq, dev, disk ? op : OP_UNKNOWN, nr_bytes);
}

SEC("tp_btf/block_io_start")
int BPF_PROG(btf_io_start, struct request *rq)
{
	on_start((__u64)rq);
	return 0;
}

SEC("tp_btf/block_rq_issue")
int BPF_PROG(btf_rq_issue, struct request *rq)
{
	on_issue((__u64)rq);
	return 0;
}

SEC("tp_btf/block_rq_complete")
int BPF_PROG(btf_rq_complete, struct request *rq, blk_status_t error, unsigned int nr_bytes)
{
	complete_request(rq, nr_bytes);
	return 0;
}

SEC("raw_tp/block_io_start")
int BPF_PROG(raw_io_start, struct request *rq)
{
	on_start((__u64)rq);
	return 0;
}

SEC("raw_tp/block_rq_issue")
int BPF_PROG(raw_rq_issue, struct request *rq)
{
	on_issue((__u64)rq);
	return 0;
}

SEC("raw_tp/block_rq_complete")
int BPF_PROG(raw_rq_complete, struct request *rq, blk_status_t error, unsigned int nr_bytes)
{
	complete_request(rq, nr_bytes);
	return 0;
}

/* The tracefs variant's stand-in for a request's address. */
static __always_inline __u64 sector_key(__u32 dev, __u64 sector)
{
	return ((__u64)dev << 32) ^ sector;
}

/*
 * The REQ_OP_* of a tracefs event's rwbs text (blk_fill_rwbs): an optional
 * F (preflush) before the op letter, then flags. "F" alone or "FF" is a
 * flush; "DE" (secure erase) is not one of the ops sonde counts.
 */
static __always_inline __u32 rwbs_op(const char *field)
{
	char rwbs[3] = {}, c, next;

	/* Copied: a CO-RE-placed array in a tracepoint's context cannot be
	 * indexed in place. */
	bpf_probe_read_kernel(rwbs, sizeof(rwbs), field);
	c = rwbs[0];
	next = rwbs[1];

	if (c == 'F' && (next == 'W' || next == 'R' || next == 'D' || next == 'F')) {
		c = next;
		next = rwbs[2];
	}
	switch (c) {
	case 'R':
		return REQ_OP_READ;
	case 'W':
		return REQ_OP_WRITE;
	case 'F':
		return REQ_OP_FLUSH;
	case 'D':
		return next == 'E' ? OP_UNKNOWN : REQ_OP_DISCARD;
	}
	return OP_UNKNOWN;
}

SEC("tracepoint/block/block_io_start")
int tp_io_start(struct trace_event_raw_block_rq *ctx)
{
	on_start(sector_key(ctx->dev, ctx->sector));
	return 0;
}

SEC("tracepoint/block/block_rq_issue")
int tp_rq_issue(struct trace_event_raw_block_rq *ctx)
{
	on_issue(sector_key(ctx->dev, ctx->sector));
	return 0;
}

SEC("tracepoint/block/block_rq_complete")
int tp_rq_complete(struct trace_event_raw_block_rq_completion *ctx)
{
	__u32 dev = ctx->dev;

	on_complete(sector_key(dev, ctx->sector), dev, rwbs_op(ctx->rwbs), ctx->nr_sector << 9);
	return 0;
}

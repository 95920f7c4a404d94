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

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 8192);
	__type(key, struct block_io_key);
	__type(value, struct block_io_value);
} block_io SEC(".maps");

SONDE_MAP_FULL_COUNTER(BLOCK_BOUNDED_MAPS);

static __always_inline void on_start(struct request *rq)
{
	struct inflight entry = {};
	__u64 addr = (__u64)rq;

	sonde_current(&entry.who);
	bpf_map_update_elem(&block_inflight, &addr, &entry, BPF_ANY);
}

/* A request without a start (a flush the block layer made itself) is
 * charged to whoever issues it. */
static __always_inline void on_issue(struct request *rq)
{
	__u64 addr = (__u64)rq;
	struct inflight *entry = bpf_map_lookup_elem(&block_inflight, &addr);
	struct inflight fresh = {};

	if (entry) {
		entry->issued_ns = bpf_ktime_get_ns();
		return;
	}
	sonde_current(&fresh.who);
	fresh.issued_ns = bpf_ktime_get_ns();
	bpf_map_update_elem(&block_inflight, &addr, &fresh, BPF_ANY);
}

static __always_inline void on_complete(struct request *rq, unsigned int nr_bytes)
{
	__u64 addr = (__u64)rq, now = bpf_ktime_get_ns();
	struct inflight *entry = bpf_map_lookup_elem(&block_inflight, &addr);
	struct block_latency_key latency_key;
	struct block_io_key io_key = {};
	struct block_io_value *io, first = { .bytes = nr_bytes, .ops = 1 };
	struct gendisk *disk;
	__u32 op, dev;

	if (!entry)
		return;
	op = BPF_CORE_READ(rq, cmd_flags) & 0xff;
	disk = BPF_CORE_READ(rq, q, disk);
	dev = (BPF_CORE_READ(disk, major) << 20) | BPF_CORE_READ(disk, first_minor);
	if (op > REQ_OP_DISCARD || !disk)
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
	io = bpf_map_lookup_elem(&block_io, &io_key);
	if (io) {
		io->bytes += nr_bytes;
		io->ops += 1;
	} else if (bpf_map_update_elem(&block_io, &io_key, &first, BPF_NOEXIST)) {
		sonde_count_map_full(&map_full, BLOCK_MAP_IO);
	}
done:
	bpf_map_delete_elem(&block_inflight, &addr);
}

SEC("tp_btf/block_io_start")
int BPF_PROG(btf_io_start, struct request *rq)
{
	on_start(rq);
	return 0;
}

SEC("tp_btf/block_rq_issue")
int BPF_PROG(btf_rq_issue, struct request *rq)
{
	on_issue(rq);
	return 0;
}

SEC("tp_btf/block_rq_complete")
int BPF_PROG(btf_rq_complete, struct request *rq, blk_status_t error, unsigned int nr_bytes)
{
	on_complete(rq, nr_bytes);
	return 0;
}

SEC("raw_tp/block_io_start")
int BPF_PROG(raw_io_start, struct request *rq)
{
	on_start(rq);
	return 0;
}

SEC("raw_tp/block_rq_issue")
int BPF_PROG(raw_rq_issue, struct request *rq)
{
	on_issue(rq);
	return 0;
}

SEC("raw_tp/block_rq_complete")
int BPF_PROG(raw_rq_complete, struct request *rq, blk_status_t error, unsigned int nr_bytes)
{
	on_complete(rq, nr_bytes);
	return 0;
}

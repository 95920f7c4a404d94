// SPDX-License-Identifier: GPL-2.0
/*
 * Sizes of the tests' write() calls in an exp2 histogram, from the classic
 * tracepoint syscalls/sys_enter_write: bucket k counts sizes up to 2^k
 * bytes; the key after the last bucket (WRITE_BUCKETS) holds the bytes
 * written, the histogram's sum. One key per bucket: WRITE_BUCKETS + 1
 * entries at most.
 */
#include "test.h"

#define WRITE_BUCKETS 20

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, WRITE_BUCKETS + 1);
	__type(key, __u64);
	__type(value, __u64);
} write_size_bytes SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_write")
int count_write(struct trace_event_raw_sys_enter *ctx)
{
	char comm[16];
	__u64 size = ctx->args[2], bucket = 0, sum = WRITE_BUCKETS;

	if (!test_task(comm))
		return 0;
	while (bucket < WRITE_BUCKETS - 1 && (1ULL << bucket) < size)
		bucket++;
	test_increment(&write_size_bytes, &bucket, 1);
	test_increment(&write_size_bytes, &sum, size);
	return 0;
}

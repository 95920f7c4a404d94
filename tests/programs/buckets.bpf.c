// SPDX-License-Identifier: GPL-2.0
/*
 * Sizes of the tests' write() calls, from the classic tracepoint
 * syscalls/sys_enter_write, in the three bucket layouts besides exp2 that
 * ebpf_exporter knows, each with its sum at the key after its last bucket:
 * - linear: key = size / 10, at most LINEAR_MAX; bucket_multiplier 10
 *   makes key k the bucket up to 10k, and the sum is kept in tens too;
 * - fixed: key = the first of 10, 100, 1000 at or above size, the sum at
 *   1001;
 * - exp2zero: key 0 holds empty writes, key k > 0 sizes up to 2^(k-1).
 * One key per bucket: a dozen entries per map at most.
 */
#include "test.h"

#define LINEAR_MAX 5
#define EXP2ZERO_MAX 11

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LINEAR_MAX + 2);
	__type(key, __u64);
	__type(value, __u64);
} write_tens_linear SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4);
	__type(key, __u64);
	__type(value, __u64);
} write_bytes_fixed SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, EXP2ZERO_MAX + 2);
	__type(key, __u64);
	__type(value, __u64);
} write_bytes_exp2zero SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_write")
int bucket_write(struct trace_event_raw_sys_enter *ctx)
{
	char comm[16];
	__u64 size = ctx->args[2], key;

	if (!test_task(comm))
		return 0;

	key = size / 10 < LINEAR_MAX ? size / 10 : LINEAR_MAX;
	test_increment(&write_tens_linear, &key, 1);
	key = LINEAR_MAX + 1;
	test_increment(&write_tens_linear, &key, size / 10);

	key = size <= 10 ? 10 : size <= 100 ? 100 : 1000;
	test_increment(&write_bytes_fixed, &key, 1);
	key = 1001;
	test_increment(&write_bytes_fixed, &key, size);

	key = 0;
	if (size)
		for (key = 1; key < EXP2ZERO_MAX && (1ULL << (key - 1)) < size; key++)
			;
	test_increment(&write_bytes_exp2zero, &key, 1);
	key = EXP2ZERO_MAX + 1;
	test_increment(&write_bytes_exp2zero, &key, size);
	return 0;
}

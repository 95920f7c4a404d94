// SPDX-License-Identifier: GPL-2.0
/*
 * Counts the calls to functions of a running program: a uprobe on each runs
 * it, with the function's index in the caller's list as cookie. `cargo bench --bench hot_text` uses it to list
 * the functions an idle sonde calls, which the linker then lays out side by
 * side (link/hot-text.txt). Not part of sonde itself.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

/* More than the ~27,000 functions of sonde's binary. */
#define MAX_FUNCTIONS (1 << 16)

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_FUNCTIONS);
	__type(key, __u32);
	__type(value, __u64);
} calls SEC(".maps");

SEC("uprobe")
int count_call(struct pt_regs *ctx)
{
	__u32 function = bpf_get_attach_cookie(ctx);
	__u64 *count = bpf_map_lookup_elem(&calls, &function);

	if (count)
		__sync_fetch_and_add(count, 1);
	return 0;
}

// SPDX-License-Identifier: GPL-2.0
/*
 * A perf_event section libbpf does not know (ebpf_exporter's format):
 * sampled by the software CPU clock at 99 Hz on every CPU, counting the
 * samples that land in the tests' processes. One slot.
 */
#include "test.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} clock_samples_total SEC(".maps");

SEC("perf_event/type=1,config=0,frequency=99")
int on_clock(struct bpf_perf_event_data *ctx)
{
	char comm[16];
	__u32 zero = 0;
	__u64 *value;

	if (!test_task(comm))
		return 0;
	value = bpf_map_lookup_elem(&clock_samples_total, &zero);
	if (value)
		__sync_fetch_and_add(value, 1);
	return 0;
}

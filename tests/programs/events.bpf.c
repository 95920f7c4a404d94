// SPDX-License-Identifier: GPL-2.0
/*
 * The tests' getpid calls sent one event each through a perf event array
 * (the event is the caller's comm), for a perf_event_array counter: user
 * space counts the events by label set. The array holds one ring per CPU,
 * sized by user space.
 */
#include "test.h"

struct event {
	char comm[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} pid_events_total SEC(".maps");

SEC("raw_tp/sys_enter")
int BPF_PROG(send_getpid, struct pt_regs *regs, long id)
{
	struct event event;

	if (id != 39 || !test_task(event.comm))
		return 0;
	bpf_perf_event_output(ctx, &pid_events_total, BPF_F_CURRENT_CPU, &event, sizeof(event));
	return 0;
}

// SPDX-License-Identifier: GPL-2.0
/*
 * What the test programs share: they only count processes whose name starts
 * with "sonde-pt-" (the children tests/programs.rs forks), so a busy machine
 * cannot fill their maps or disturb exact counts.
 */
#ifndef SONDE_TEST_PROGRAMS_H
#define SONDE_TEST_PROGRAMS_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#define TEST_PREFIX "sonde-pt-"
#define TEST_PREFIX_LEN 9

/* Fills comm and says whether the current task is one of the tests'. */
static __always_inline bool test_task(char comm[16])
{
	const char prefix[] = TEST_PREFIX;

	bpf_get_current_comm(comm, 16);
	for (int i = 0; i < TEST_PREFIX_LEN; i++)
		if (comm[i] != prefix[i])
			return false;
	return true;
}

/* Adds one to the u64 at key, inserting it first; a full map drops it. */
static __always_inline void test_increment(void *map, const void *key, __u64 by)
{
	__u64 *value = bpf_map_lookup_elem(map, key);

	if (!value) {
		__u64 zero = 0;

		bpf_map_update_elem(map, key, &zero, BPF_NOEXIST);
		value = bpf_map_lookup_elem(map, key);
		if (!value)
			return;
	}
	__sync_fetch_and_add(value, by);
}

char LICENSE[] SEC("license") = "GPL";

#endif

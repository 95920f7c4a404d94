// SPDX-License-Identifier: GPL-2.0
/*
 * PCI ids for the pci_* decoders. The tests pass the vendor, device and
 * class of a PCI function in the argument registers of getuid(), which
 * ignores them; raw_tp sys_enter keys them as ebpf_exporter's pci example
 * does: the vendor, vendor << 16 | device, the class byte and class << 8 |
 * subclass. One key per id the tests send.
 */
#include "test.h"
#include <bpf/bpf_core_read.h>

#define NR_GETUID 102

struct pci_key {
	__u32 vendor;
	__u32 device;
	__u8 class;
	__u16 subclass;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, struct pci_key);
	__type(value, __u64);
} pci_ids_total SEC(".maps");

SEC("raw_tp/sys_enter")
int BPF_PROG(record_pci_id, struct pt_regs *regs, long id)
{
	struct pci_key key = {};
	char comm[16];
	__u32 vendor, device, class;

	if (id != NR_GETUID || !test_task(comm))
		return 0;
	vendor = BPF_CORE_READ(regs, di);
	device = BPF_CORE_READ(regs, si);
	class = BPF_CORE_READ(regs, dx);
	if (!vendor)
		return 0;
	key.vendor = vendor;
	key.device = vendor << 16 | device;
	key.class = class >> 16;
	key.subclass = class >> 8;
	test_increment(&pci_ids_total, &key, 1);
	return 0;
}

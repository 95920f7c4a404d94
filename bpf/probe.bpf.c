// SPDX-License-Identifier: GPL-2.0
/*
 * Tiny programs `sonde doctor` loads one at a time to find out which attach
 * kinds this kernel accepts: each counts its runs in `hits` (or, for the ring
 * buffer, sends one event), so doctor can check the probe really fired.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

__u64 hits = 0;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} events SEC(".maps");

static __always_inline int hit(void)
{
	__sync_fetch_and_add(&hits, 1);
	return 0;
}

SEC("raw_tp/sys_enter")
int probe_raw_tp(void *ctx)
{
	return hit();
}

SEC("tp_btf/sys_enter")
int BPF_PROG(probe_tp_btf, struct pt_regs *regs, long id)
{
	return hit();
}

SEC("tracepoint/raw_syscalls/sys_enter")
int probe_tracepoint(void *ctx)
{
	return hit();
}

SEC("uprobe")
int probe_uprobe(void *ctx)
{
	return hit();
}

SEC("raw_tp/sys_enter")
int probe_ringbuf(void *ctx)
{
	__u32 pid = bpf_get_current_pid_tgid() >> 32;

	bpf_ringbuf_output(&events, &pid, sizeof(pid), 0);
	return 0;
}

/* An empty enter/exit pair: `sonde bench syscalls` measures what merely
 * having programs on both syscall tracepoints costs, as a yardstick. */
SEC("raw_tp/sys_enter")
int empty_enter(void *ctx)
{
	return 0;
}

SEC("raw_tp/sys_exit")
int empty_exit(void *ctx)
{
	return 0;
}

/* Empty programs on the tracepoints every send and receive on a socket
 * passes, whatever the syscall (read, writev, sendfile…): the floor of a
 * capture run at socket I/O only, beside the one at every syscall exit
 * (`sonde bench empty-exit --sockets`). */
SEC("tp_btf/sock_send_length")
int empty_sock_send(void *ctx)
{
	return 0;
}

SEC("tp_btf/sock_recv_length")
int empty_sock_recv(void *ctx)
{
	return 0;
}

// SPDX-License-Identifier: GPL-2.0
/*
 * Packets arriving on the loopback interface for the tests' port, from an
 * XDP program in an `xdp/lo` section (attached as ebpf_exporter attaches
 * it: a link on the interface the section names, generic XDP on lo). Keyed
 * by ethertype, IP protocol, the interface index the packet came in on and
 * its destination address (IPv4 as ::ffff:a.b.c.d, so one 16-byte field
 * holds both families). Only UDP and TCP to TEST_PORT count: the machine's
 * other loopback traffic is left alone. Every packet passes.
 */
#include "test.h"
#include <bpf/bpf_endian.h>

#define TEST_PORT 997
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD

struct packet_key {
	__u16 ethertype;
	__u8 protocol;
	__u8 pad;
	__u32 ifindex;
	__u8 daddr[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, struct packet_key);
	__type(value, __u64);
} loopback_packets_total SEC(".maps");

/* The destination port of the UDP or TCP header at l4, 0 for any other. */
static __always_inline __u16 dport(void *l4, void *end, __u8 protocol)
{
	if (protocol == IPPROTO_UDP) {
		struct udphdr *udp = l4;

		return (void *)(udp + 1) <= end ? bpf_ntohs(udp->dest) : 0;
	}
	if (protocol == IPPROTO_TCP) {
		struct tcphdr *tcp = l4;

		return (void *)(tcp + 1) <= end ? bpf_ntohs(tcp->dest) : 0;
	}
	return 0;
}

SEC("xdp/lo")
int count_loopback(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct packet_key key = { .ifindex = ctx->ingress_ifindex };
	void *l4;

	if ((void *)(eth + 1) > end)
		return XDP_PASS;
	key.ethertype = bpf_ntohs(eth->h_proto);
	if (key.ethertype == ETH_P_IP) {
		struct iphdr *ip = (void *)(eth + 1);

		if ((void *)(ip + 1) > end)
			return XDP_PASS;
		key.protocol = ip->protocol;
		key.daddr[10] = key.daddr[11] = 0xff;
		__builtin_memcpy(&key.daddr[12], &ip->daddr, 4);
		l4 = (void *)ip + ip->ihl * 4;
	} else if (key.ethertype == ETH_P_IPV6) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > end)
			return XDP_PASS;
		key.protocol = ip6->nexthdr;
		__builtin_memcpy(key.daddr, &ip6->daddr, 16);
		l4 = ip6 + 1;
	} else {
		return XDP_PASS;
	}
	if (dport(l4, end, key.protocol) != TEST_PORT)
		return XDP_PASS;
	test_increment(&loopback_packets_total, &key, 1);
	return XDP_PASS;
}

// SPDX-License-Identifier: GPL-2.0
/*
 * The tests' USDT target: fires the probe sonde_test:tick argv[1] times,
 * with the tick's number, a DNS name in wire format and a 4-byte tag.
 * Built with the C compiler at test time; <sys/sdt.h> is systemtap-sdt-dev.
 */
#include <stdlib.h>
#include <sys/sdt.h>

int main(int argc, char **argv)
{
	/* On the stack, not in .rodata: the probe reads them with
	 * bpf_probe_read_user, which cannot fault in a page nothing touched. */
	char name[16] = "\5sonde\4test";
	unsigned char tag[4] = { 0xde, 0xad, 0x00, 0x01 };
	unsigned long ticks = argc > 1 ? strtoul(argv[1], NULL, 10) : 0;

	for (unsigned long i = 0; i < ticks; i++)
		DTRACE_PROBE3(sonde_test, tick, i, name, tag);
	return 0;
}

// SPDX-License-Identifier: GPL-2.0
/*
 * The http collector: the server side of plain HTTP/1.x, seen from syscalls
 * only (this kernel has no kprobes). A server connection is an fd returned
 * by accept/accept4; its reads (read, readv, recvfrom, recvmsg) carry the
 * requests, its writes (write, writev, sendto, sendmsg, sendfile) the
 * responses, close ends it. Connections are keyed by (tgid, fd), so thread
 * pools and keep-alive are right, and pre-fork workers are each their own.
 *
 * Cost is the design constraint: one program runs at every syscall exit on
 * every CPU. It reads the syscall number from the saved registers and
 * returns unless it is one of the twelve above; for those it tests the
 * process's bit in `accepting` (an array lookup the verifier inlines), set
 * once the process accepted a connection. So a process that never accepts
 * pays a compare and a bit test, no hash lookup; one that does looks its fd
 * up in `conns`, and a read that misses there looks in `servers`
 * (BENCHMARKS.md, HTTP). Only sys_exit: the registers still hold the
 * arguments, the buffer holds what was read, and the return value says how
 * many bytes moved.
 *
 * A request starts at the exit of its first read (now = its first byte is
 * in the process) and ends at the exit of the last write before the next
 * request's first read or the close. Events go to user space through a
 * ring buffer, which parses and aggregates them (src/collect/http/):
 * REQUEST with the first HTTP_HEAD - 1 bytes of the request (and MORE with
 * the next reads' bytes while fewer than that came: a head written in
 * pieces, even a request line cut in its method; pipelined requests come
 * in the same bytes), RESPONSE for every write that starts a response, with
 * its first bytes (an informational 1xx, like `100 Continue`, is skipped:
 * it is not the final status; pipelined requests get one each), and DONE
 * with the times and byte counts. Copies are bpf_probe_read_user of a
 * bounded length, once per request and once per response, plus a 12-byte
 * peek at each write of a response; bodies are only counted.
 *
 * A connection accepted before sonde started is picked up at its next read
 * that starts with an HTTP method, once its process has been seen serving
 * HTTP on a connection sonde saw accepted.
 *
 * Invariant: a connection is in `conns` from its accept (or pickup) to its
 * close; for each request (or batch of pipelined ones) user space gets
 * REQUEST, any MORE, a RESPONSE per response, then DONE, in that order,
 * unless the ring buffer was full (counted).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "sonde.h"

char LICENSE[] SEC("license") = "GPL";

/* x86_64 syscall numbers. */
#define NR_READ 0
#define NR_WRITE 1
#define NR_CLOSE 3
#define NR_READV 19
#define NR_WRITEV 20
#define NR_SENDFILE 40
#define NR_ACCEPT 43
#define NR_SENDTO 44
#define NR_RECVFROM 45
#define NR_SENDMSG 46
#define NR_RECVMSG 47
#define NR_ACCEPT4 288

enum conn_state {
	CONN_IDLE,     /* accepted, or between requests */
	CONN_REQUEST,  /* a request is being read */
	CONN_RESPONSE, /* its response is being written */
	CONN_NOT_HTTP, /* the first bytes were no HTTP request: ignored until close */
};

struct conn {
	__u64 start_ns;   /* exit of the request's first read */
	__u64 end_ns;     /* exit of the response's last write so far */
	__u64 req_bytes;
	__u64 resp_bytes;
	__s32 listen_fd;  /* the fd accept() was called on; -1 when picked up */
	__u32 state;
};

/*
 * Live server connections by (tgid << 32 | fd): an entry goes at close, so
 * this is bounded by open accepted connections; 65,536 of them at 40 bytes
 * plus the element header is about 6 MiB at most, allocated as they come.
 * A process that exits without closing leaves its entries; user space
 * deletes those of processes that are gone each round.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct conn);
} conns SEC(".maps");

/*
 * One bit per possible tgid (PID_MAX_LIMIT, 4,194,304, over 64 bits a
 * word: 512 KiB), set at a process's first accept and never cleared: a
 * reused tgid with a stale bit only pays the `conns` lookup that misses.
 */
#define TGID_WORDS 65536

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, TGID_WORDS);
	__type(key, __u32);
	__type(value, __u64);
} accepting SEC(".maps");

/*
 * Processes (tgid) seen serving HTTP: only their unknown fds are checked
 * for a request line. One entry per server process; 4,096 is far more than
 * a host runs, and user space deletes those that are gone.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u32);
} servers SEC(".maps");

/*
 * Events to user space: 600 bytes per event, three for most requests, so
 * 4 MiB holds about 2,300 requests between two reads by user space (it
 * polls every 50 ms); a reserve that fails is counted as HTTP_MAP_EVENTS.
 */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 << 20);
} http_events SEC(".maps");

SONDE_MAP_FULL_COUNTER(HTTP_BOUNDED_MAPS);

/* sonde's own tgid, set before loading: sonde never instruments itself. */
const volatile __u32 self_tgid;

/* What a syscall's exit needs: its number, arguments and result. */
struct call {
	__u64 nr;
	__u64 arg0;
	__u64 arg1;
	long ret;
};

static __always_inline int interesting(__u64 nr)
{
	switch (nr) {
	case NR_READ: case NR_WRITE: case NR_CLOSE: case NR_READV: case NR_WRITEV:
	case NR_SENDFILE: case NR_ACCEPT: case NR_SENDTO: case NR_RECVFROM:
	case NR_SENDMSG: case NR_RECVMSG: case NR_ACCEPT4:
		return 1;
	}
	return 0;
}

static __always_inline int is_read(__u64 nr)
{
	return nr == NR_READ || nr == NR_READV || nr == NR_RECVFROM || nr == NR_RECVMSG;
}

/* Where the first bytes of a read or write are: a buffer, or the first iovec. */
static __always_inline const void *first_buffer(const struct call *call, __u64 *len)
{
	struct iovec iov = {};
	const struct iovec *vec = (const void *)call->arg1;

	*len = call->ret;
	switch (call->nr) {
	case NR_READ: case NR_WRITE: case NR_SENDTO: case NR_RECVFROM:
		return (const void *)call->arg1;
	case NR_RECVMSG: case NR_SENDMSG: {
		struct user_msghdr msg = {};

		if (bpf_probe_read_user(&msg, sizeof(msg), (const void *)call->arg1))
			return 0;
		vec = msg.msg_iov;
		break;
	}
	case NR_READV: case NR_WRITEV:
		break;
	default:
		return 0;
	}
	if (bpf_probe_read_user(&iov, sizeof(iov), vec))
		return 0;
	if (iov.iov_len < *len)
		*len = iov.iov_len;
	return iov.iov_base;
}

/* Reserves an event of `kind` for the current process and connection. */
static __always_inline struct http_event *reserve(__u32 kind, __u32 tgid, __s32 fd)
{
	struct http_event *ev = bpf_ringbuf_reserve(&http_events, sizeof(*ev), 0);

	if (!ev) {
		sonde_count_map_full(&map_full, HTTP_MAP_EVENTS);
		return 0;
	}
	ev->kind = kind;
	ev->tgid = tgid;
	ev->fd = fd;
	ev->len = 0;
	ev->ns = bpf_ktime_get_ns();
	return ev;
}

/* Copies the first bytes of the call's buffer into `ev`; how many. */
static __always_inline __u32 copy_head(struct http_event *ev, const struct call *call)
{
	__u64 len;
	const void *buf = first_buffer(call, &len);

	if (!buf)
		return 0;
	if (len > HTTP_HEAD - 1)
		len = HTTP_HEAD - 1;
	if (bpf_probe_read_user(ev->data, len & (HTTP_HEAD - 1), buf))
		return 0;
	ev->len = len;
	return len;
}

/*
 * Whether `d` starts with a request method: 3 to 7 capital letters, then a
 * space (methods user space does not know are counted as _OTHER). Returns
 * REQUEST_LINE, or REQUEST_PREFIX when all `len` (< 8) bytes are capitals:
 * the start of a request line a client wrote in pieces.
 */
#define REQUEST_LINE 1
#define REQUEST_PREFIX 2

static __always_inline int is_request(const char *d, __u32 len)
{
	int i;

#pragma unroll
	for (i = 0; i < 8; i++) {
		if (i >= len)
			return i > 0 ? REQUEST_PREFIX : 0;
		if (d[i] == ' ')
			return i >= 3 ? REQUEST_LINE : 0;
		if (d[i] < 'A' || d[i] > 'Z')
			return 0;
	}
	return 0;
}

/* is_request on the call's first bytes: a peek of at most 8. */
static __always_inline int peek_request(const struct call *call)
{
	char first[16] = {};
	__u64 len;
	const void *buf = first_buffer(call, &len);
	__u32 n;

	if (!buf || !len)
		return 0;
	n = len < 8 ? len : 8;
	if (bpf_probe_read_user(first, n & 15, buf))
		return 0;
	return is_request(first, n);
}

/* Sends DONE for the request `c` holds, if its response began. */
static __always_inline void finish(struct conn *c, __u32 tgid, __s32 fd)
{
	struct http_event *ev;

	if (c->state != CONN_RESPONSE)
		return;
	c->state = CONN_IDLE;
	ev = reserve(HTTP_EVENT_DONE, tgid, fd);
	if (!ev)
		return;
	ev->start_ns = c->start_ns;
	ev->end_ns = c->end_ns;
	ev->req_bytes = c->req_bytes;
	ev->resp_bytes = c->resp_bytes;
	ev->listen_fd = c->listen_fd;
	bpf_ringbuf_submit(ev, 0);
}

/*
 * The first read of a request on `c` (NULL: an fd sonde does not know yet),
 * once peek_request said it starts with a request line.
 */
static __always_inline void begin_request(struct conn *c, const struct call *call, __u32 tgid,
					  __s32 fd)
{
	struct http_event *ev = reserve(HTTP_EVENT_REQUEST, tgid, fd);

	if (!ev)
		return;
	copy_head(ev, call);
	ev->cgroup = bpf_get_current_cgroup_id();
	bpf_get_current_comm(ev->comm, sizeof(ev->comm));
	if (!c) {
		struct conn fresh = { .listen_fd = -1 };
		__u64 key = (__u64)tgid << 32 | (__u32)fd;

		if (bpf_map_update_elem(&conns, &key, &fresh, BPF_NOEXIST)) {
			sonde_count_map_full(&map_full, HTTP_MAP_CONNS);
			bpf_ringbuf_discard(ev, 0);
			return;
		}
		c = bpf_map_lookup_elem(&conns, &key);
		if (!c) {
			bpf_ringbuf_discard(ev, 0);
			return;
		}
	} else if (!bpf_map_lookup_elem(&servers, &tgid)) {
		/* A lookup first: an update per request would cost more. */
		__u32 one = 1;

		if (bpf_map_update_elem(&servers, &tgid, &one, BPF_NOEXIST) &&
		    !bpf_map_lookup_elem(&servers, &tgid))
			sonde_count_map_full(&map_full, HTTP_MAP_SERVERS);
	}
	ev->listen_fd = c->listen_fd;
	c->state = CONN_REQUEST;
	c->start_ns = ev->ns;
	c->end_ns = 0;
	c->req_bytes = call->ret;
	c->resp_bytes = 0;
	bpf_ringbuf_submit(ev, 0);
}

/* The next bytes of a request whose first read held fewer than HTTP_HEAD - 1. */
static __always_inline void more_request(const struct call *call, __u32 tgid, __s32 fd)
{
	struct http_event *ev = reserve(HTTP_EVENT_MORE, tgid, fd);

	if (!ev)
		return;
	copy_head(ev, call);
	bpf_ringbuf_submit(ev, 0);
}

/*
 * Whether the call's bytes start a final response: "HTTP/1.x NNN" with NNN
 * not informational (1xx), except 101 Switching Protocols. A 12-byte peek.
 */
static __always_inline int peek_final_status(const struct call *call)
{
	char d[16] = {};
	__u64 len;
	const void *buf = first_buffer(call, &len);

	if (!buf || len < 12 || bpf_probe_read_user(d, 12, buf))
		return 0;
	if (d[0] != 'H' || d[1] != 'T' || d[2] != 'T' || d[3] != 'P' || d[4] != '/')
		return 0;
	return d[9] != '1' || (d[10] == '0' && d[11] == '1');
}

/*
 * A write of `call->ret` bytes on `c`. Each write that starts a final
 * response sends RESPONSE (the first one's, or the next pipelined
 * request's), with the bytes of responses written before it.
 */
static __always_inline void on_write(struct conn *c, const struct call *call, __u32 tgid, __s32 fd)
{
	struct http_event *ev;

	if (c->state != CONN_REQUEST && c->state != CONN_RESPONSE)
		return;
	if (call->nr != NR_SENDFILE && peek_final_status(call)) {
		if (c->state == CONN_REQUEST) {
			c->state = CONN_RESPONSE;
			c->resp_bytes = 0;
		}
		ev = reserve(HTTP_EVENT_RESPONSE, tgid, fd);
		if (ev) {
			copy_head(ev, call);
			ev->resp_bytes = c->resp_bytes;
			bpf_ringbuf_submit(ev, 0);
		}
	} else if (c->state == CONN_REQUEST) {
		/* `100 Continue`, or no HTTP: not the response. */
		return;
	}
	c->resp_bytes += call->ret;
	c->end_ns = bpf_ktime_get_ns();
}

static __always_inline void on_exit(struct call *call)
{
	__u64 pid_tgid, key, *word;
	__u32 tgid, word_index;
	__s32 fd;
	struct conn *c;

	if (!interesting(call->nr) || call->ret < 0)
		return;
	pid_tgid = bpf_get_current_pid_tgid();
	tgid = pid_tgid >> 32;
	if (tgid == self_tgid)
		return;
	word_index = tgid / 64;
	word = bpf_map_lookup_elem(&accepting, &word_index);
	if (!word)
		return;
	if (call->nr == NR_ACCEPT || call->nr == NR_ACCEPT4) {
		struct conn fresh = { .listen_fd = (__s32)call->arg0 };

		if (!(*word & (1ULL << (tgid % 64))))
			__sync_fetch_and_or(word, 1ULL << (tgid % 64));

		key = (__u64)tgid << 32 | (__u32)call->ret;
		/* BPF_ANY: an entry left by a close sonde missed is replaced. */
		if (bpf_map_update_elem(&conns, &key, &fresh, BPF_ANY))
			sonde_count_map_full(&map_full, HTTP_MAP_CONNS);
		return;
	}
	if (!(*word & (1ULL << (tgid % 64))))
		return;
	fd = (__s32)call->arg0;
	key = (__u64)tgid << 32 | (__u32)fd;
	c = bpf_map_lookup_elem(&conns, &key);
	if (!c) {
		if (call->ret > 0 && is_read(call->nr) && bpf_map_lookup_elem(&servers, &tgid) &&
		    peek_request(call) == REQUEST_LINE)
			begin_request(0, call, tgid, fd);
		return;
	}
	if (call->nr == NR_CLOSE) {
		finish(c, tgid, fd);
		bpf_map_delete_elem(&conns, &key);
		return;
	}
	if (call->ret == 0 || c->state == CONN_NOT_HTTP)
		return;
	if (!is_read(call->nr)) {
		on_write(c, call, tgid, fd);
		return;
	}
	if (c->state == CONN_REQUEST) {
		/* The head came in pieces: user space needs the rest of it. */
		if (c->req_bytes < HTTP_HEAD - 1)
			more_request(call, tgid, fd);
		c->req_bytes += call->ret;
		return;
	}
	if (!peek_request(call)) {
		/* A body read after its response began (a server that answers
		 * before it drains the body) belongs to the request; anything else
		 * on a fresh connection is no HTTP. */
		if (c->state == CONN_RESPONSE)
			c->req_bytes += call->ret;
		else
			c->state = CONN_NOT_HTTP;
		return;
	}
	finish(c, tgid, fd);
	begin_request(c, call, tgid, fd);
}

/* BTF-typed: the registers are read directly. */
SEC("tp_btf/sys_exit")
int BPF_PROG(btf_sys_exit, struct pt_regs *regs, long ret)
{
	struct call call = {
		.nr = regs->orig_ax,
		.arg0 = regs->di,
		.arg1 = regs->si,
		.ret = ret,
	};

	on_exit(&call);
	return 0;
}

/* Without BTF for the tracepoint: the registers through probe reads. */
SEC("raw_tp/sys_exit")
int BPF_PROG(raw_sys_exit, struct pt_regs *regs, long ret)
{
	struct call call = {
		.nr = BPF_CORE_READ(regs, orig_ax),
		.ret = ret,
	};

	if (!interesting(call.nr))
		return 0;
	call.arg0 = BPF_CORE_READ(regs, di);
	call.arg1 = BPF_CORE_READ(regs, si);
	on_exit(&call);
	return 0;
}

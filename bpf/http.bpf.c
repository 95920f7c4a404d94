// SPDX-License-Identifier: GPL-2.0
/*
 * The http collector: both ends of HTTP/1.x and HTTP/2, seen from
 * tracepoints and from OpenSSL's and Go's functions only (this kernel has
 * no kprobes). Two captures
 * share one state machine, which only asks whether bytes go the request's
 * way or the response's; the first the kernel has is attached.
 *
 * The socket capture (Linux 6.3+): programs on sock_recv_length and
 * sock_send_length, which every receive and send on a socket passes,
 * whatever the syscall (read, readv, recvfrom, recvmsg; write, writev,
 * sendto, sendmsg, sendfile), and on inet_sock_set_state for the ends.
 * They run at socket I/O only, so a process that does none pays nothing,
 * and no syscall takes the kernel's slow exit path (BENCHMARKS.md, "HTTP:
 * the floor at socket I/O"). Connections are keyed by their socket: a
 * TCP socket becomes one at its first bytes that are a request line
 * (received: the process serves; sent: it calls), connections opened
 * before sonde too; sockets seen established whose first bytes are not
 * are marked in `first_bytes`.
 *
 * The syscall capture (older kernels): one program at every syscall exit
 * on every CPU. A server connection is an fd returned by accept/accept4, a
 * client connection an fd connect()ed to an IPv4 or IPv6 address; close
 * ends either; keyed by (tgid, fd). It reads the syscall number from the
 * saved registers and returns unless it is one of the fifteen it follows;
 * for those it tests the process's bits in `gates` (an array lookup the
 * verifier inlines): one set once the process accepted or connected a
 * connection, one once it called OpenSSL. So a process that never does
 * pays a compare and a bit test, no hash lookup; one that does looks its
 * fd up in `conns`, and a read that misses there looks in `servers`. Only
 * sys_exit: the registers still hold the arguments, the buffer holds what
 * was read, and the return value says how many bytes moved.
 *
 * Either way a server's requests are in its reads, its responses in its
 * writes; a client's the other way round; thread pools, keep-alive and
 * pre-fork workers are right, each connection its own. With
 * `watch_mappings`, an mmap that maps a file executable, or an exec, sends
 * MAPPED, so user space finds a libssl that a process (a container's own)
 * loads, or a Go program that starts, after sonde started (the socket
 * capture then adds a program on sys_exit for it).
 *
 * HTTPS: uprobes on SSL_read, SSL_write, SSL_read_ex and SSL_write_ex of
 * libssl (entry and return, attached per file by user space) see the
 * plaintext. The entry saves the call's arguments per thread in `ssl_calls`;
 * a send or receive the thread makes inside the call names the socket (and
 * is not parsed: it moves ciphertext), remembered per SSL object in
 * `ssl_fds` for calls served from OpenSSL's buffer; the return feeds the
 * plaintext to the same state machine under that socket's key, and marks
 * the connection `tls` so that its socket I/O is no longer parsed; one
 * that calls OpenSSL also looks its thread up in `ssl_calls`.
 *
 * A request starts at its first read (server; a client: its first write)
 * and ends at the last write (a client: read) before the next request or
 * the close (each at the socket I/O, or the syscall's exit). What user
 * space needs of it is gathered in the connection's entry in `conns`,
 * laid out as the event
 * that carries it (struct http_done): the first HTTP_HEAD - 1 bytes of the
 * request (the next reads' bytes appended while fewer than that came: a
 * head written in pieces, even a request line cut in its method; pipelined
 * requests come in the same bytes), right after them those of the first
 * write that starts a final response (an informational 1xx, like `100
 * Continue`, is not the final status), the times and the byte counts. At
 * its end one bpf_ringbuf_output sends it, only as many bytes as the heads
 * hold: one event per request (three of 600 bytes each cost 4.2 µs of BPF
 * time a request under wrk, one 2.4 µs: BENCHMARKS.md, HTTP, "BPF run time
 * per request"). Besides: OPEN once per connection, at
 * its first request, with who serves (or calls) on it, for user space to
 * name the service while the fd is open; RESPONSE for each further
 * response of a pipelined batch. Copies are bpf_probe_read_user of a
 * bounded length, once per request and once per response: a read (a
 * client: write) that may start the next request is copied to a per-CPU
 * buffer, looked at there and moved into the entry if it does (`head_copies`;
 * OpenSSL's plaintext is peeked at, 8 bytes), and each further write of a
 * response gets a 12-byte peek (a pipelined response may start there);
 * bodies are only counted. User space reads the ring
 * buffer without a wakeup per event (see submit), parses and aggregates
 * the events (src/collect/http/).
 *
 * HTTP/2: a connection whose first bytes are the preface ("PRI *
 * HTTP/2.0") is CONN_H2 from then on, and each of its reads and writes is
 * sent (HTTP_EVENT_H2) with the pieces of its bytes that hold frame
 * headers and payloads other than DATA's: the program walks each
 * direction's frames by their lengths (struct h2_way), user space follows
 * the streams and the HPACK tables, which need every header block in
 * order. A SETTINGS frame before the preface (a peer that speaks first)
 * leaves a socket to be looked at again.
 *
 * Syscall capture: a connection accepted before sonde started is picked up
 * at its next read that starts with an HTTP method, once its process has
 * been seen serving HTTP on a connection sonde saw accepted.
 *
 * Invariant: a connection is in `conns` from its accept, connect (or
 * pickup; socket capture: its first request) to its close; user space gets its OPEN before its first DONE
 * (OPEN is sent again at the next request until it found room); for each
 * request (or batch of pipelined ones) a RESPONSE per response after the
 * first, then DONE, in that order; at the close a DONE marked closed or,
 * with no request to end, CLOSED when OPEN was sent; unless the ring
 * buffer was full (counted).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "sonde.h"

char LICENSE[] SEC("license") = "GPL";

/* x86_64 syscall numbers. */
#define NR_READ 0
#define NR_WRITE 1
#define NR_CLOSE 3
#define NR_MMAP 9
#define NR_READV 19
#define NR_WRITEV 20
#define NR_SENDFILE 40
#define NR_CONNECT 42
#define NR_ACCEPT 43
#define NR_SENDTO 44
#define NR_RECVFROM 45
#define NR_SENDMSG 46
#define NR_RECVMSG 47
#define NR_EXECVE 59
#define NR_ACCEPT4 288
#define NR_EXECVEAT 322

#define EINPROGRESS 115
#define PROT_EXEC 4

enum conn_state {
	CONN_IDLE,     /* accepted, or between requests */
	CONN_REQUEST,  /* a request is being read */
	CONN_RESPONSE, /* its response is being written */
	CONN_NOT_HTTP, /* the first bytes were no HTTP request: ignored until close */
	CONN_H2,       /* HTTP/2: every read and write goes to user space (HTTP_EVENT_H2) */
};

/*
 * One direction of an HTTP/2 connection, as the program walks it: where
 * its next frame header starts (after `left` bytes), and whether the
 * bytes before it are copied (the preface, a payload other than DATA's).
 * A header cut by the end of a call is completed from the next. The
 * cursor fields are one call's walk, kept here rather than in registers
 * for the verifier (see h2_step).
 */
struct h2_way {
	__u32 left;      /* bytes of the current frame's payload (or the preface) to come */
	__u8 keep;       /* they are copied */
	__u8 have;       /* bytes of the next frame's header seen, in head */
	__u8 lost;       /* a walk failed or an event found no room: every later event says so */
	__u8 pad;
	__u8 head[32];   /* 9 used; 32 for the verifier's bound on a partial read */
	__u64 base;      /* the buffer walked: 0 when the call has none (sendfile) */
	__u32 size;      /* its bytes that moved */
	__u32 off;       /* of those, walked */
	__u32 start;     /* its first byte's offset in the call */
	__u32 iov;       /* the next iovec (a vector call's) */
	__u32 moved;     /* the call's bytes */
	__u32 sent;      /* of those, in events sent (a call of many frames takes several) */
};

/*
 * What every run reads (state, role, the flags, the request's times and
 * counts) comes first, in the entry's first two cache lines with the map's
 * own header and key; what a connection's start and end read, after the
 * heads.
 */
struct conn {
	__u32 state;
	__u8 role;        /* enum http_role */
	__u8 tls;         /* OpenSSL's uprobes feed it; its syscalls move ciphertext */
	__u8 opened;      /* its OPEN was sent */
	__u8 left_out;    /* [collect.http] leaves it out: written by user space, with CONN_NOT_HTTP */
	/* The request in progress (or the last one, once its response began),
	 * sent as it is at its end: start_ns at its first read (client:
	 * write), end_ns at its last write (client: read) so far (call_time).
	 * kind, tgid and fd are set once, when the entry is made. */
	struct http_done done;
	__s32 listen_fd;  /* the fd accept() was called on; -1 when not seen or a client */
	struct http_addr server; /* a client's peer; a server's own address (socket capture) */
	__u64 key;        /* its key here, in OPEN: user space leaves a connection out by it */
	/* CONN_H2: toward the server, toward the client. */
	struct h2_way h2[2];
};

/*
 * Live connections by (tgid << 32 | fd): an entry goes at close, so this is
 * bounded by open accepted and connected connections (UDP ones connect()ed
 * too: DNS lookups; they leave at close like the rest). An entry holds its
 * request's and response's heads (1 KiB) until the request ends: about
 * 1.1 KiB, 2 KiB with the allocator's rounding, allocated as they come; a
 * host with 10,000 open connections holds 20 MiB here, 65,536 of them
 * (the bound) 128 MiB.
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
 * Two bits per possible tgid (PID_MAX_LIMIT, 4,194,304, 32 tgids a 64-bit
 * word: 1 MiB): GATE_SOCKETS set at a process's first accept or connect,
 * GATE_TLS at its first OpenSSL call; never cleared: a reused tgid with a
 * stale bit only pays the lookups that miss. One word holds both, so a
 * process with neither pays one array lookup.
 */
#define TGID_WORDS 131072
#define GATE_SOCKETS 1ULL
#define GATE_TLS 2ULL

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, TGID_WORDS);
	__type(key, __u32);
	__type(value, __u64);
} gates SEC(".maps");

/* The word of `tgid`'s gates, and the shift of its two bits in it. */
static __always_inline __u64 *gate_word(__u32 tgid, __u32 *shift)
{
	__u32 index = tgid / 32;

	*shift = (tgid % 32) * 2;
	return bpf_map_lookup_elem(&gates, &index);
}

static __always_inline void open_gate(__u64 *word, __u32 shift, __u64 gate)
{
	if (!(*word & (gate << shift)))
		__sync_fetch_and_or(word, gate << shift);
}

/*
 * OpenSSL calls in progress, by thread (pid_tgid): an entry lives from a
 * call's entry to its return. A thread is in at most one call, so this is
 * bounded by threads inside OpenSSL at once; the entry of a thread killed
 * inside a call goes with its process (user space deletes those of
 * processes that are gone). A plain hash: an LRU's update and delete per
 * call cost more.
 */
struct ssl_call {
	__u64 ssl;       /* the SSL object */
	__u64 buf;
	__u64 count_ptr; /* the _ex forms: where the byte count is written */
	__s32 fd;        /* the socket a syscall inside the call used; -1 */
	__u32 op;        /* SSL_OP_* */
	__u64 key;       /* that socket's key in `conns` */
	/* Socket capture: the server end of that socket, were the call to
	 * start a request (an SSL_read's: its own address; an SSL_write's: the peer). */
	struct http_addr server;
};

#define SSL_OP_WRITE 1 /* SSL_write*; else SSL_read* */
#define SSL_OP_EX 2    /* the _ex form: returns 1 and writes the count */

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct ssl_call);
} ssl_calls SEC(".maps");

/*
 * The socket of each SSL object (by tgid and address), learnt from a
 * syscall inside one of its calls, for calls that make none (served from
 * OpenSSL's buffer). One per live TLS connection; an LRU, as OpenSSL frees
 * SSL objects without a call sonde sees, and an address reused for a new
 * connection is learnt again at its first call that reads or writes.
 */
struct ssl_key {
	__u32 tgid;
	__u32 pad;
	__u64 ssl;
};

struct ssl_socket {
	__u64 key; /* in `conns` */
	__s32 fd;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct ssl_key);
	__type(value, struct ssl_socket);
} ssl_fds SEC(".maps");

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
 * Socket capture: TCP sockets by what sonde knows of their first bytes.
 * FRESH: established since sonde loaded, no bytes moved yet; NOT_HTTP:
 * those bytes were no request line, so the socket's next sends and
 * receives leave after one lookup instead of reading user memory again.
 * Only a socket sonde saw established is marked: one older than sonde may
 * be in the middle of a body, and is looked at again until its next
 * request line. An entry goes when its socket becomes a connection or
 * closes; an LRU, so on a host with more sockets than this some are only
 * looked at again.
 */
#define SOCK_FRESH 1
#define SOCK_NOT_HTTP 2

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, __u8);
} first_bytes SEC(".maps");

/*
 * Events to user space: one DONE per request, 56 bytes plus the two heads
 * plus the ring's own 8-byte header (wrk against nginx: 360 bytes for
 * nginx's side, 624 for wrk's, whose read holds the body too: 1 KiB a
 * request with both ends probed), and OPEN (80 bytes) once per connection.
 * Its size is set before loading (`[collect.bpf] http_ring_size`, a power
 * of two; the default's headroom is measured in BENCHMARKS.md, "Idle: ring
 * buffers and start"): the reader drains the ring every 50 ms while events
 * come and is woken once, by the event that fills a quarter (sonde.h), and
 * has the other three quarters' time to get a CPU. The kernel maps the
 * ring twice, so it is resident twice in sonde. An event with no room is
 * counted as HTTP_MAP_EVENTS.
 */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
} http_events SEC(".maps");

/*
 * The first bytes of a read (a client: write) that may start the next
 * request on a known connection, copied here once and looked at in the
 * copy: a peek, then a copy into the entry once its heads were sent, read
 * user memory twice, a helper call and the kernel's user-copy checks each
 * (BENCHMARKS.md, HTTP, "Fewer reads of user memory"). One per CPU, for the
 * sys_exit program only: its runs are not preempted, a uprobe's may be
 * (OpenSSL's calls peek instead).
 */
struct head_copy {
	__u64 words[HTTP_HEAD / 8];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct head_copy);
} head_copies SEC(".maps");

/* What a new entry of `conns` starts from (add_conn). */
static const struct conn empty_conn;

SONDE_MAP_FULL_COUNTER(HTTP_BOUNDED_MAPS);

/* Whether the reader sleeps, and the ring's quarter (sonde.h). */
SONDE_RING_READER();

/* sonde's own tgid, set before loading: sonde never instruments itself. */
const volatile __u32 self_tgid;
/* Whether to send MAPPED ([collect.bpf] http_tls_late_attach), set before loading. */
const volatile bool watch_mappings;

/*
 * What a syscall's exit needs: its number, arguments and result. An OpenSSL
 * call is given as the read or write it is (NR_READ, NR_WRITE).
 */
struct call {
	__u64 nr;
	__u64 arg0;
	__u64 arg1;
	long ret;
	__u64 ns; /* the socket's TCP clock (socket capture: tcp_clock_cache); 0: none */
};

/*
 * When `call` happened, no earlier than `since`: the socket's TCP clock
 * where the socket capture read one, else the clock now. The TCP clock
 * (CLOCK_MONOTONIC, as bpf_ktime_get_ns) is refreshed as a send's bytes
 * go out and as a segment comes in, so after a send it is the send's
 * time, after a receive the arrival of the bytes it reads; a load where a
 * clock read costs ~45 ns in this VM, three a request (BENCHMARKS.md,
 * "HTTP: the TCP clock"). A clock older than `since` (a send that only
 * queued its bytes behind others still going out) is not taken.
 */
static __always_inline __u64 call_time(const struct call *call, __u64 since)
{
	return call->ns && call->ns >= since ? call->ns : bpf_ktime_get_ns();
}

static __always_inline int interesting(__u64 nr)
{
	switch (nr) {
	case NR_READ: case NR_WRITE: case NR_CLOSE: case NR_MMAP: case NR_READV:
	case NR_WRITEV: case NR_SENDFILE: case NR_CONNECT: case NR_ACCEPT:
	case NR_SENDTO: case NR_RECVFROM: case NR_SENDMSG: case NR_RECVMSG:
	case NR_ACCEPT4: case NR_EXECVE: case NR_EXECVEAT:
		return 1;
	}
	return 0;
}

static __always_inline int is_read(__u64 nr)
{
	return nr == NR_READ || nr == NR_READV || nr == NR_RECVFROM || nr == NR_RECVMSG;
}

static __always_inline int is_write(__u64 nr)
{
	return nr == NR_WRITE || nr == NR_WRITEV || nr == NR_SENDTO || nr == NR_SENDMSG ||
	       nr == NR_SENDFILE;
}

static __always_inline int moves_bytes(__u64 nr)
{
	return is_read(nr) || is_write(nr);
}

/*
 * The syscall interface's structs, read from user memory. Their layout is
 * the x86_64 ABI's, fixed, so they are declared here: vmlinux.h's are
 * relocated against the kernel's BTF at load, each type a scan of every
 * kernel type (BENCHMARKS.md, "Idle: ring buffers and start").
 */
struct abi_iovec {
	__u64 base;
	__u64 len;
};

struct abi_msghdr {
	__u64 name;
	__s32 namelen;
	__u32 pad;
	__u64 iov;
	__u64 iovlen;
	__u64 control;
	__u64 controllen;
	__u32 flags;
};

/* sockaddr_in (16 bytes) and sockaddr_in6 share family and port; an IPv4
 * address is where IPv6's flowinfo is. */
struct abi_sockaddr {
	__u16 family;
	__u16 port;     /* network order */
	__u8 addr4[4];  /* sockaddr_in's sin_addr, sockaddr_in6's sin6_flowinfo */
	__u8 addr6[16]; /* sockaddr_in6's sin6_addr */
	__u32 scope_id;
};

#define ABI_SOCKADDR_IN_BYTES 16
_Static_assert(sizeof(struct abi_iovec) == 16, "struct iovec");
_Static_assert(sizeof(struct abi_msghdr) == 56, "struct user_msghdr");
_Static_assert(sizeof(struct abi_sockaddr) == 28, "struct sockaddr_in6");

/*
 * Where a read's or write's bytes are: `*buf` for a call of one buffer,
 * `*vec` (its iovecs) for a vector call; both 0 for one with none
 * (sendfile) or whose msghdr cannot be read.
 */
static __always_inline void call_buffers(const struct call *call, __u64 *buf, __u64 *vec)
{
	*buf = 0;
	*vec = 0;
	switch (call->nr) {
	case NR_READ: case NR_WRITE: case NR_SENDTO: case NR_RECVFROM:
		*buf = call->arg1;
		return;
	case NR_RECVMSG: case NR_SENDMSG: {
		struct abi_msghdr msg = {};

		if (!bpf_probe_read_user(&msg, sizeof(msg), (const void *)call->arg1))
			*vec = msg.iov;
		return;
	}
	case NR_READV: case NR_WRITEV:
		*vec = call->arg1;
		return;
	}
}

/* Where the first bytes of a read or write are: a buffer, or the first iovec. */
static __always_inline const void *first_buffer(const struct call *call, __u64 *len)
{
	struct abi_iovec iov = {};
	__u64 buf, vec;

	*len = call->ret;
	call_buffers(call, &buf, &vec);
	if (buf)
		return (const void *)buf;
	if (!vec || bpf_probe_read_user(&iov, sizeof(iov), (const void *)vec))
		return 0;
	if (iov.len < *len)
		*len = iov.len;
	return (const void *)iov.base;
}

/*
 * Sends a made event (the reader is woken when it sleeps, or once the
 * unread bytes pass a further quarter of the ring: sonde.h; a wakeup per
 * event would cost several microseconds a request, BENCHMARKS.md, HTTP).
 */
static __always_inline void submit(void *ev)
{
	sonde_ring_submit(&http_events, &reader_asleep, &ring_checks, ev, wakeup_shift);
}

/* A small event of `kind` (struct http_open's first fields) for `tgid`, `fd`. */
static __always_inline struct http_open *reserve_open(__u32 kind, __u32 tgid, __s32 fd)
{
	struct http_open *ev = bpf_ringbuf_reserve(&http_events, sizeof(*ev), 0);

	if (!ev) {
		sonde_count_map_full(&map_full, HTTP_MAP_EVENTS);
		return 0;
	}
	ev->kind = kind;
	ev->tgid = tgid;
	ev->fd = fd;
	return ev;
}

/*
 * Copies at most `room` (< HTTP_HEAD) first bytes of the call's buffer to
 * `to`; how many. The mask is the verifier's proof that they are fewer
 * than HTTP_HEAD.
 */
static __always_inline __u32 copy_first_bytes(char *to, __u32 room, const struct call *call)
{
	__u64 len;
	const void *buf = first_buffer(call, &len);

	if (!buf)
		return 0;
	if (len > room)
		len = room;
	/* Kept from the compiler, which would drop the mask after the min and
	 * bound a copy of len the helper does not get. */
	barrier_var(len);
	len &= HTTP_HEAD - 1;
	if (bpf_probe_read_user(to, len, buf))
		return 0;
	return len;
}

/*
 * copy_first_bytes to `d->data` at `at` (< HTTP_HEAD). The mask is the
 * verifier's proof that at + length < 2 * HTTP_HEAD.
 */
static __always_inline __u32 copy_head(struct http_done *d, __u32 at, __u32 room,
				       const struct call *call)
{
	return copy_first_bytes(d->data + (at & (HTTP_HEAD - 1)), room, call);
}

/*
 * Moves the `len` (< HTTP_HEAD) bytes of a head_copy to the start of
 * `d->data`, in the fewest 8-byte words of 64, 128, 256 or 512 bytes that
 * hold them: a request head is mostly short.
 */
static __always_inline void take_head_copy(struct http_done *d, const struct head_copy *copy,
					   __u32 len)
{
	__u64 *to = (__u64 *)d->data;
	int i;

	if (len <= 64) {
#pragma unroll
		for (i = 0; i < 64 / 8; i++)
			to[i] = copy->words[i];
	} else if (len <= 128) {
#pragma unroll
		for (i = 0; i < 128 / 8; i++)
			to[i] = copy->words[i];
	} else if (len <= 256) {
#pragma unroll
		for (i = 0; i < 256 / 8; i++)
			to[i] = copy->words[i];
	} else {
#pragma unroll
		for (i = 0; i < HTTP_HEAD / 8; i++)
			to[i] = copy->words[i];
	}
}

/*
 * Whether `d` starts with a request method: 3 to 7 capital letters, then a
 * space (methods user space does not know are counted as _OTHER). Returns
 * REQUEST_LINE, or REQUEST_PREFIX when all `len` (< 8) bytes are capitals:
 * the start of a request line a client wrote in pieces.
 */
#define REQUEST_LINE 1
#define REQUEST_PREFIX 2
#define REQUEST_H2 3
#define H2_SETTINGS 4
/* "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", and the frame type whose payload is not copied. */
#define H2_PREFACE_LEN 24
#define H2_DATA 0

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

/*
 * is_request on the `len` first bytes at `d`, of which it reads at most 9;
 * REQUEST_H2 for HTTP/2's preface ("PRI * HTTP/2.0"), which looks like a
 * request line and is not one; H2_SETTINGS for an HTTP/2 SETTINGS frame
 * (a server that speaks first, as gRPC's do, or a client that heard it
 * before it wrote its preface): the preface is yet to come.
 */
static __always_inline int request_kind(const char *d, __u32 len)
{
	if (len >= 4 && d[0] == 'P' && d[1] == 'R' && d[2] == 'I' && d[3] == ' ')
		return len >= 8 && d[4] == '*' && d[5] == ' ' && d[6] == 'H' && d[7] == 'T' ?
			       REQUEST_H2 : 0;
	if (len >= 9 && !d[0] && !d[1] && d[3] == 4 && !(d[4] & ~1) && !d[5] && !d[6] && !d[7] &&
	    !d[8])
		return H2_SETTINGS;
	return is_request(d, len);
}

/* request_kind of the call's first bytes: a peek of at most 9. */
static __always_inline int peek_request(const struct call *call)
{
	char first[16] = {};
	__u64 len;
	const void *buf = first_buffer(call, &len);
	__u32 n;

	if (!buf || !len)
		return 0;
	n = len < 9 ? len : 9;
	/* Kept in a register, so the mask below bounds the size the verifier sees. */
	barrier_var(n);
	if (bpf_probe_read_user(first, n & 15, buf))
		return 0;
	return request_kind(first, n);
}

/*
 * Whether the `len` bytes at `d` start a final response: "HTTP/1.x NNN"
 * with NNN not informational (1xx), except 101 Switching Protocols.
 */
static __always_inline int is_final_status(const char *d, __u32 len)
{
	if (len < 12)
		return 0;
	if (d[0] != 'H' || d[1] != 'T' || d[2] != 'T' || d[3] != 'P' || d[4] != '/')
		return 0;
	return d[9] != '1' || (d[10] == '0' && d[11] == '1');
}

/* is_final_status on the call's first bytes: a 12-byte peek. */
static __always_inline int peek_final_status(const struct call *call)
{
	char d[16] = {};
	__u64 len;
	const void *buf = first_buffer(call, &len);

	if (!buf || len < 12 || bpf_probe_read_user(d, 12, buf))
		return 0;
	return is_final_status(d, 12);
}

/*
 * Sends DONE for the request `c` holds, if its response began: the event
 * as the entry holds it, cut after the heads. `flags`: HTTP_DONE_*.
 */
static __always_inline void send_done(struct conn *c, __u32 flags)
{
	struct http_done *d = &c->done;
	__u32 len;

	if (c->state != CONN_RESPONSE)
		return;
	c->state = CONN_IDLE;
	d->flags = flags;
	/* Each head is shorter than HTTP_HEAD: the mask cuts nothing. */
	len = offsetof(struct http_done, data) + ((d->req_len + d->resp_len) & (2 * HTTP_HEAD - 1));
	if (bpf_ringbuf_output(&http_events, d, len,
			       sonde_ring_flags(&http_events, &reader_asleep, &ring_checks,
						wakeup_shift)))
		sonde_count_map_full(&map_full, HTTP_MAP_EVENTS);
}

/* The syscall capture's key in `conns`: the process and the fd. */
static __always_inline __u64 fd_key(__u32 tgid, __s32 fd)
{
	return (__u64)tgid << 32 | (__u32)fd;
}

/*
 * Makes the entry of a connection of `role` on `fd` that starts now: from
 * empty_conn (struct conn is too large for the stack), then its fields.
 * BPF_ANY: an entry left by a close sonde missed is replaced; BPF_NOEXIST.
 * NULL when `conns` is full.
 */
static __always_inline struct conn *add_conn(__u64 key, __u32 tgid, __s32 fd, __u8 role,
					     __s32 listen_fd, __u64 how)
{
	struct conn *c;

	if (bpf_map_update_elem(&conns, &key, &empty_conn, how)) {
		sonde_count_map_full(&map_full, HTTP_MAP_CONNS);
		return 0;
	}
	c = bpf_map_lookup_elem(&conns, &key);
	if (!c)
		return 0;
	c->listen_fd = listen_fd;
	c->role = role;
	c->key = key;
	c->done.kind = HTTP_EVENT_DONE;
	c->done.tgid = tgid;
	c->done.fd = fd;
	return c;
}

/*
 * OPEN for `c`, once: who serves (or calls) on it, while its fd is open
 * for user space to read its address. A server's process becomes one
 * whose unknown fds the syscall capture checks for requests (`servers`):
 * one seen accepting, or serving TLS. A connection picked up without
 * either (the socket capture's, mostly) has nothing to add there: the
 * syscall capture picks one up only for a process already in it.
 */
static __always_inline void send_open(struct conn *c, __u32 tgid, __s32 fd)
{
	struct http_open *ev = reserve_open(HTTP_EVENT_OPEN, tgid, fd);

	if (!ev)
		return;
	ev->listen_fd = c->listen_fd;
	ev->cgroup = bpf_get_current_cgroup_id();
	bpf_get_current_comm(ev->comm, sizeof(ev->comm));
	ev->role = c->role;
	ev->server = c->server;
	ev->parent = BPF_CORE_READ((struct task_struct *)bpf_get_current_task(), real_parent, tgid);
	ev->key = c->key;
	submit(ev);
	c->opened = 1;
	if (c->role == HTTP_SERVER && (c->listen_fd >= 0 || c->tls) &&
	    !bpf_map_lookup_elem(&servers, &tgid)) {
		__u32 one = 1;

		if (bpf_map_update_elem(&servers, &tgid, &one, BPF_NOEXIST) &&
		    !bpf_map_lookup_elem(&servers, &tgid))
			sonde_count_map_full(&map_full, HTTP_MAP_SERVERS);
	}
}

/*
 * `c`, or when NULL a connection sonde does not know yet, added under
 * `key` as `role` with its server end `server` when known; its OPEN sent
 * once. NULL when `conns` is full.
 */
static __always_inline struct conn *opened_conn(struct conn *c, __u64 key, __u32 tgid, __s32 fd,
						__u8 role, __u8 tls,
						const struct http_addr *server)
{
	if (!c) {
		c = add_conn(key, tgid, fd, role, -1, BPF_NOEXIST);
		if (!c)
			return 0;
		c->tls = tls;
		if (server)
			c->server = *server;
	}
	if (!c->opened)
		send_open(c, tgid, fd);
	return c;
}

/* What h2_step did. */
#define H2_LOST -1   /* the bytes cannot be followed */
#define H2_GO_ON 0
#define H2_WALKED 1  /* the call's bytes are walked */
#define H2_FULL 2    /* the event has no room for the next piece */

/*
 * Appends a piece to `ev`: up to `want` bytes (at most H2_PIECE - 1) at
 * `src` in user memory, `at` bytes into the event's stretch of the call.
 * How much of `data` is used is read back from the event, not carried in
 * a register (see h2_step). The bytes taken: fewer when the room ends, 0
 * when none is left, -1 when unreadable.
 */
static __always_inline long h2_piece(struct http_chunk *ev, __u32 at, __u64 src, __u32 want)
{
	__u32 used = *(volatile __u16 *)&ev->copied, take, u;

	if (used + 7 > H2_ROOM)
		return 0;
	take = H2_ROOM - 6 - used;
	if (take > want)
		take = want;
	if (take > H2_PIECE - 1)
		take = H2_PIECE - 1;
	barrier_var(take);
	take &= H2_PIECE - 1;
	u = used & (H2_ROOM - 1);
	if (bpf_probe_read_user(ev->data + u + 6, take, (const void *)src))
		return -1;
	__builtin_memcpy(ev->data + u, &at, 4);
	ev->data[u + 4] = take;
	ev->data[u + 5] = take >> 8;
	*(volatile __u16 *)&ev->copied = used + 6 + take;
	return take;
}

/*
 * One step of walking a call's bytes on way `w` into `ev`: the next
 * buffer (an iovec of `vec`, a vector call's), a stretch of payload
 * (copied or stepped over), or a frame header (all of it or its part in
 * this buffer). Every value is read back from `w`: the verifier then sees
 * one state per step, where exact values in registers would make it
 * follow every path through every step. A global function: verified once.
 */
__noinline int h2_step(struct http_chunk *ev, struct h2_way *w, __u64 vec)
{
	struct abi_iovec iov = {};
	__u32 off, size, start, moved, sent, left, take, have, used;
	const __u8 *header;
	__u64 base;
	long n;

	if (!ev || !w)
		return H2_LOST;
	off = *(volatile __u32 *)&w->off;
	size = *(volatile __u32 *)&w->size;
	start = *(volatile __u32 *)&w->start;
	moved = *(volatile __u32 *)&w->moved;
	sent = *(volatile __u32 *)&w->sent;
	base = *(volatile __u64 *)&w->base;
	if (off >= size) {
		/* The bytes moved fill the iovecs in order. */
		start += size;
		if (start >= moved)
			return H2_WALKED;
		if (!vec || bpf_probe_read_user(&iov, sizeof(iov),
						(const void *)(vec + (__u64)w->iov * sizeof(iov))))
			return H2_LOST;
		w->iov++;
		w->base = iov.base;
		w->size = iov.len < moved - start ? iov.len : moved - start;
		w->off = 0;
		w->start = start;
		return H2_GO_ON;
	}
	left = *(volatile __u32 *)&w->left;
	if (left) {
		take = size - off < left ? size - off : left;
		if (w->keep) {
			if (!base)
				return H2_LOST;
			n = h2_piece(ev, start + off - sent, base + off, take);
			if (n <= 0)
				return n ? H2_LOST : H2_FULL;
			take = n;
		}
		w->off = off + take;
		w->left = left - take;
		return H2_GO_ON;
	}
	have = *(volatile __u8 *)&w->have;
	if (!base || have > 8)
		return H2_LOST;
	take = 9 - have < size - off ? 9 - have : size - off;
	/* A header goes whole into one event. */
	used = *(volatile __u16 *)&ev->copied;
	if (used + 6 + take > H2_ROOM - 1)
		return H2_FULL;
	if (h2_piece(ev, start + off - sent, base + off, take) != take)
		return H2_LOST;
	w->off = off + take;
	if (take == 9) {
		/* Whole in this buffer: its length and type read from the copy. */
		header = (const __u8 *)ev->data + (used & (H2_ROOM - 1)) + 6;
	} else {
		/* Cut by the buffer's end: put together in `head`. */
		if (bpf_probe_read_user(w->head + (have & 15), take & 15, (const void *)(base + off)))
			return H2_LOST;
		if (have + take < 9) {
			w->have = have + take;
			return H2_GO_ON;
		}
		header = w->head;
	}
	w->have = 0;
	w->left = (__u32)header[0] << 16 | (__u32)header[1] << 8 | (__u8)header[2];
	w->keep = header[3] != H2_DATA;
	return H2_GO_ON;
}

/*
 * Up to H2_STEPS steps of the walk into `ev`: what the last one did
 * (H2_GO_ON: steps left to take). A global function: verified once.
 */
#define H2_STEPS 128

__noinline int h2_walk(struct http_chunk *ev, struct h2_way *w, __u64 vec)
{
	int i, step = H2_GO_ON;

	for (i = 0; i < H2_STEPS; i++) {
		step = h2_step(ev, w, vec);
		if (step != H2_GO_ON)
			break;
	}
	return step;
}

/* An HTTP_EVENT_H2 reserved, its pieces and byte count to fill. */
static __always_inline struct http_chunk *h2_event(__u32 tgid, __s32 fd, __u8 received, __u64 ns)
{
	struct http_chunk *ev = bpf_ringbuf_reserve(&http_events, sizeof(*ev), 0);

	if (!ev) {
		sonde_count_map_full(&map_full, HTTP_MAP_EVENTS);
		return 0;
	}
	ev->kind = HTTP_EVENT_H2;
	ev->tgid = tgid;
	ev->fd = fd;
	ev->received = received;
	ev->lost = 0;
	ev->copied = 0;
	ev->ns = ns;
	ev->len = 0;
	return ev;
}

/*
 * The HTTP_EVENT_H2s of a read or write on HTTP/2 connection `c`: its
 * frame headers and non-DATA payloads as pieces (struct http_chunk), in
 * as many events as they need (an event is sent when its room or its
 * steps run out), each for the stretch of the call's bytes up to where
 * the next begins; the walk is kept in `c` for the direction's
 * next call: at most H2_EVENTS events, H2_STEPS steps each. An event the
 * ring had no room for, or a walk that failed, marks the direction lost
 * for good: user space then gives the connection up. A global function,
 * verified once rather than inside each program that follows connections.
 */
#define H2_EVENTS 8

__noinline int send_chunk(const struct call *call, struct conn *c, __u32 tgid, __s32 fd)
{
	struct http_chunk *ev;
	struct h2_way *w;
	__u64 buf, vec, ns;
	__u32 at;
	__u8 received;
	int i, step = H2_LOST;

	if (!call || !c)
		return 0;
	received = is_read(call->nr);
	w = &c->h2[(received == (c->role == HTTP_SERVER)) ? 0 : 1];
	call_buffers(call, &buf, &vec);
	/* One buffer; or none (sendfile: DATA payload only, base 0). A vector
	 * call's first step takes its first iovec. */
	w->base = buf;
	w->size = vec ? 0 : call->ret;
	w->off = 0;
	w->start = 0;
	w->iov = 0;
	w->moved = call->ret;
	w->sent = 0;
	ns = bpf_ktime_get_ns();
	ev = h2_event(tgid, fd, received, ns);
	if (!ev) {
		w->lost = 1;
		return 0;
	}
	for (i = 0; !w->lost && i < H2_EVENTS; i++) {
		step = h2_walk(ev, w, vec);
		/* Out of room or of steps: the walk goes on in the next event. */
		if (step != H2_FULL && step != H2_GO_ON)
			break;
		at = w->start + w->off;
		ev->len = at - w->sent;
		submit(ev);
		w->sent = at;
		ev = h2_event(tgid, fd, received, ns);
		if (!ev) {
			w->lost = 1;
			return 0;
		}
	}
	if (step != H2_WALKED)
		w->lost = 1;
	ev->len = w->moved - w->sent;
	ev->lost = w->lost;
	submit(ev);
	return 0;
}

/*
 * The HTTP/2 preface began `c` (NULL: as opened_conn): this and each
 * later read and write of it go to user space.
 */
static __always_inline void begin_h2(struct conn *c, const struct call *call, __u64 key,
				     __u32 tgid, __s32 fd, __u8 role, __u8 tls,
				     const struct http_addr *server)
{
	c = opened_conn(c, key, tgid, fd, role, tls, server);
	if (!c)
		return;
	c->state = CONN_H2;
	/* The preface is copied whole; the other way starts at a frame. */
	__builtin_memset(c->h2, 0, sizeof(c->h2));
	c->h2[0].left = H2_PREFACE_LEN;
	c->h2[0].keep = 1;
	send_chunk(call, c, tgid, fd);
}

/*
 * The first read (a client: write) of a request on `c`, once request_kind
 * said it starts with a request line. NULL: a connection sonde does not
 * know yet, then added under `key` as `role`, with its server end
 * `server` when known. Its head is `copied` bytes of `copy` when those
 * were copied already (else NULL).
 */
static __always_inline void begin_request(struct conn *c, const struct call *call, __u64 key,
					  __u32 tgid, __s32 fd, __u8 role, __u8 tls,
					  const struct http_addr *server,
					  const struct head_copy *copy, __u32 copied)
{
	struct http_done *d;

	c = opened_conn(c, key, tgid, fd, role, tls, server);
	if (!c)
		return;
	d = &c->done;
	c->state = CONN_REQUEST;
	/* No earlier than the last request's end (0 on a new connection). */
	d->start_ns = call_time(call, d->end_ns);
	d->end_ns = 0;
	d->req_bytes = call->ret;
	d->resp_bytes = 0;
	d->resp_len = 0;
	if (copy) {
		take_head_copy(d, copy, copied);
		d->req_len = copied;
	} else {
		d->req_len = copy_head(d, 0, HTTP_HEAD - 1, call);
	}
}

/*
 * A write (a client: read) of `call->ret` bytes on `c`. The first one that
 * starts a final response has its head copied after the request's; each
 * further one (a pipelined request's) sends RESPONSE, with the bytes of
 * the responses moved before it.
 */
static __always_inline void on_response_bytes(struct conn *c, const struct call *call, __u32 tgid,
					      __s32 fd)
{
	struct http_done *d = &c->done;
	__u64 now = 0;

	if (c->state == CONN_REQUEST) {
		__u32 at = d->req_len & (HTTP_HEAD - 1), len;

		if (call->nr == NR_SENDFILE)
			return;
		/* Copied where it stays if it is the response, as it mostly is. */
		len = copy_head(d, at, HTTP_HEAD - 1, call);
		if (!is_final_status(d->data + at, len))
			return; /* `100 Continue`, or no HTTP: not the response. */
		c->state = CONN_RESPONSE;
		d->resp_len = len;
		d->resp_bytes = 0;
	} else if (c->state != CONN_RESPONSE) {
		return;
	} else if (call->nr != NR_SENDFILE && peek_final_status(call)) {
		struct http_done *ev = bpf_ringbuf_reserve(
			&http_events, offsetof(struct http_done, data) + HTTP_HEAD, 0);

		if (ev) {
			ev->kind = HTTP_EVENT_RESPONSE;
			ev->tgid = tgid;
			ev->fd = fd;
			ev->start_ns = d->start_ns;
			ev->end_ns = now = call_time(call, d->start_ns);
			ev->resp_bytes = d->resp_bytes;
			ev->req_len = 0;
			ev->resp_len = copy_head(ev, 0, HTTP_HEAD - 1, call);
			submit(ev);
		} else {
			sonde_count_map_full(&map_full, HTTP_MAP_EVENTS);
		}
	}
	d->resp_bytes += call->ret;
	/* One clock read per call: a pipelined response's start is its end. */
	d->end_ns = now ? now : call_time(call, d->start_ns);
}

/*
 * Bytes that moved on `c` (not a close): the request's way (a server's
 * reads, a client's writes) or the response's.
 */
static __always_inline void on_bytes(struct conn *c, const struct call *call, __u32 tgid, __s32 fd)
{
	struct http_done *d = &c->done;
	struct head_copy *copy = 0;
	__u32 zero = 0, copied = 0;
	int kind;

	if (call->ret == 0 || c->state == CONN_NOT_HTTP)
		return;
	if (c->state == CONN_H2) {
		send_chunk(call, c, tgid, fd);
		return;
	}
	if (is_read(call->nr) != (c->role == HTTP_SERVER)) {
		on_response_bytes(c, call, tgid, fd);
		return;
	}
	if (c->state == CONN_REQUEST) {
		/* The head came in pieces: user space needs the rest of it. */
		if (d->req_len < HTTP_HEAD - 1)
			d->req_len += copy_head(d, d->req_len, HTTP_HEAD - 1 - d->req_len, call);
		d->req_bytes += call->ret;
		return;
	}
	/* May start the next request: its head copied once (head_copies),
	 * but on a TLS connection (a uprobe's run). */
	if (c->tls) {
		kind = peek_request(call);
	} else {
		copy = bpf_map_lookup_elem(&head_copies, &zero);
		if (!copy)
			return;
		copied = copy_first_bytes((char *)copy->words, HTTP_HEAD - 1, call);
		kind = request_kind((char *)copy->words, copied < 8 ? copied : 8);
	}
	if (!kind || kind == H2_SETTINGS) {
		/* A body read after its response began (a server that answers
		 * before it drains the body) belongs to the request; anything else
		 * on a fresh connection is no HTTP. */
		if (c->state == CONN_RESPONSE)
			d->req_bytes += call->ret;
		else
			c->state = CONN_NOT_HTTP;
		return;
	}
	send_done(c, 0);
	if (kind == REQUEST_H2)
		begin_h2(c, call, 0, tgid, fd, c->role, c->tls, 0);
	else
		begin_request(c, call, 0, tgid, fd, c->role, c->tls, 0, copy, copied);
}

/*
 * Bytes on a connection sonde does not know, that a request line (HTTP/1)
 * or the preface (HTTP/2) may start, making the process its `role` end.
 */
static __always_inline void begin_unknown(const struct call *call, __u64 key, __u32 tgid,
					  __s32 fd, __u8 role, __u8 tls,
					  const struct http_addr *server)
{
	int kind = peek_request(call);

	if (kind == REQUEST_LINE)
		begin_request(0, call, key, tgid, fd, role, tls, server, 0, 0);
	else if (kind == REQUEST_H2)
		begin_h2(0, call, key, tgid, fd, role, tls, server);
}

/*
 * A connect() that succeeded or is in progress (non-blocking): an IPv4 or
 * IPv6 peer makes the fd a client connection, with the peer's address.
 */
static __always_inline void on_connect(const struct call *call, __u32 tgid, __u64 *word,
				       __u32 shift)
{
	struct abi_sockaddr addr = {};
	struct conn *c;

	if (bpf_probe_read_user(&addr, ABI_SOCKADDR_IN_BYTES, (const void *)call->arg1))
		return;
	if (addr.family == SONDE_AF_INET6 &&
	    bpf_probe_read_user(&addr, sizeof(addr), (const void *)call->arg1))
		return;
	if (addr.family != SONDE_AF_INET && addr.family != SONDE_AF_INET6)
		return;
	open_gate(word, shift, GATE_SOCKETS);
	c = add_conn(fd_key(tgid, call->arg0), tgid, call->arg0, HTTP_CLIENT, -1, BPF_ANY);
	if (!c)
		return;
	if (addr.family == SONDE_AF_INET)
		__builtin_memcpy(c->server.addr, addr.addr4, 4);
	else
		__builtin_memcpy(c->server.addr, addr.addr6, 16);
	c->server.family = addr.family;
	c->server.port = bpf_ntohs(addr.port);
}

/*
 * Whether syscall `nr` with mmap's third and fifth arguments `prot` and
 * `map_fd` made a file executable in its process: an mmap of one (a
 * library, maybe a libssl), or an exec (an executable, maybe Go's).
 */
static __always_inline int maps_code(__u64 nr, __u64 prot, __s64 map_fd)
{
	if (nr == NR_EXECVE || nr == NR_EXECVEAT)
		return 1;
	return nr == NR_MMAP && (prot & PROT_EXEC) && map_fd >= 0;
}

/* MAPPED for `tgid` (with `watch_mappings`): user space looks at its files. */
static __always_inline void send_mapped(__u32 tgid)
{
	struct http_open *ev;

	if (!watch_mappings)
		return;
	ev = reserve_open(HTTP_EVENT_MAPPED, tgid, -1);
	if (ev)
		submit(ev);
}

/* The close of `c`: its last request ends; user space forgets what OPEN told. */
static __always_inline void on_close(struct conn *c)
{
	if (c->state == CONN_RESPONSE) {
		send_done(c, HTTP_DONE_CLOSED);
	} else if (c->opened) {
		struct http_open *ev = reserve_open(HTTP_EVENT_CLOSED, c->done.tgid, c->done.fd);

		if (ev)
			submit(ev);
	}
}

/* prot and fd: mmap's third and fifth arguments, read only for mmap. */
static __always_inline void on_exit(struct call *call, __u64 prot, __s64 map_fd)
{
	__u64 pid_tgid, key, *word, gates_of;
	__u32 tgid, shift;
	__s32 fd;
	struct conn *c;

	if (!interesting(call->nr))
		return;
	/* A call that failed (a read that would block ends each keep-alive
	 * batch) or moved no bytes (a read at the end of the stream: the close
	 * that follows ends the request) leaves before any lookup. */
	if (call->ret < 0 && !(call->nr == NR_CONNECT && call->ret == -EINPROGRESS))
		return;
	if (call->ret == 0 && moves_bytes(call->nr))
		return;
	pid_tgid = bpf_get_current_pid_tgid();
	tgid = pid_tgid >> 32;
	if (tgid == self_tgid)
		return;
	if (call->nr == NR_MMAP || call->nr == NR_EXECVE || call->nr == NR_EXECVEAT) {
		if (maps_code(call->nr, prot, map_fd))
			send_mapped(tgid);
		return;
	}
	word = gate_word(tgid, &shift);
	if (!word)
		return;
	if (call->nr == NR_ACCEPT || call->nr == NR_ACCEPT4) {
		open_gate(word, shift, GATE_SOCKETS);
		add_conn(fd_key(tgid, call->ret), tgid, call->ret, HTTP_SERVER, call->arg0,
			 BPF_ANY);
		return;
	}
	if (call->nr == NR_CONNECT) {
		on_connect(call, tgid, word, shift);
		return;
	}
	gates_of = *word >> shift;
	if (!(gates_of & (GATE_SOCKETS | GATE_TLS)))
		return;
	fd = (__s32)call->arg0;
	key = fd_key(tgid, fd);
	if ((gates_of & GATE_TLS) && call->nr != NR_CLOSE) {
		struct ssl_call *inside = bpf_map_lookup_elem(&ssl_calls, &pid_tgid);

		/* Ciphertext of an OpenSSL call: it names the call's socket. */
		if (inside) {
			inside->fd = fd;
			inside->key = key;
			return;
		}
	}
	c = bpf_map_lookup_elem(&conns, &key);
	if (!c) {
		if (call->ret > 0 && is_read(call->nr) && bpf_map_lookup_elem(&servers, &tgid))
			begin_unknown(call, key, tgid, fd, HTTP_SERVER, 0, 0);
		return;
	}
	if (call->nr == NR_CLOSE) {
		on_close(c);
		bpf_map_delete_elem(&conns, &key);
		return;
	}
	/* Handshakes and alerts outside SSL_read/SSL_write: ciphertext too. */
	if (c->tls)
		return;
	on_bytes(c, call, tgid, fd);
}

/* BTF-typed: the registers are read directly. */
SEC("tp_btf/sys_exit")
int BPF_PROG(btf_sys_exit, struct pt_regs *regs, long ret)
{
	struct call call = {
		.nr = regs->orig_ax,
		.ret = ret,
	};

	/* Most exits are of calls that never carry HTTP: leave before reading
	 * the arguments (as the variant below does). */
	if (!interesting(call.nr))
		return 0;
	call.arg0 = regs->di;
	call.arg1 = regs->si;
	on_exit(&call, regs->dx, regs->r8);
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
	if (call.nr == NR_MMAP)
		on_exit(&call, BPF_CORE_READ(regs, dx), BPF_CORE_READ(regs, r8));
	else
		on_exit(&call, 0, -1);
	return 0;
}

/*
 * The socket capture (the first variant, Linux 6.3+): the server end of TCP
 * socket `sk` for a process at its `role` end. Read once per connection,
 * at its first request.
 */
static __always_inline void server_of(const struct sock *sk, __u8 role, struct http_addr *to)
{
	to->family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (role == HTTP_SERVER) {
		to->port = BPF_CORE_READ(sk, __sk_common.skc_num);
		if (to->family == SONDE_AF_INET)
			BPF_CORE_READ_INTO((__u32 *)to->addr, sk, __sk_common.skc_rcv_saddr);
		else
			BPF_CORE_READ_INTO((struct in6_addr *)to->addr, sk,
					   __sk_common.skc_v6_rcv_saddr);
	} else {
		to->port = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
		if (to->family == SONDE_AF_INET)
			BPF_CORE_READ_INTO((__u32 *)to->addr, sk, __sk_common.skc_daddr);
		else
			BPF_CORE_READ_INTO((struct in6_addr *)to->addr, sk,
					   __sk_common.skc_v6_daddr);
	}
}

/*
 * Socket capture: `ret` bytes moved on socket `sk` in the calling process's
 * context, `received` toward it. Which syscall, its fd and its buffer come
 * from the registers the syscall saved; a send or receive in no syscall
 * that names a buffer (io_uring, a kernel thread's, a splice from a pipe)
 * is not followed. A socket sonde does not know starts a connection when
 * its first bytes are a request line: received, the process serves;
 * sent, it calls.
 */
static __always_inline void on_socket_bytes(struct sock *sk, int ret, int flags, bool received)
{
	__u64 pid_tgid, key = (__u64)sk, *word;
	struct http_addr server = {};
	struct ssl_call *inside = 0;
	__u8 *first = 0;
	struct pt_regs *regs;
	struct call call;
	__u32 tgid, shift;
	struct conn *c;
	int kind;

	/* A stream socket of TCP's is a tcp_sock (its clock is read below). */
	if (ret <= 0 || (flags & SONDE_MSG_PEEK) || sk->sk_protocol != IPPROTO_TCP ||
	    sk->sk_type != SONDE_SOCK_STREAM)
		return;
	pid_tgid = bpf_get_current_pid_tgid();
	tgid = pid_tgid >> 32;
	if (tgid == self_tgid)
		return;
	word = gate_word(tgid, &shift);
	if (word && ((*word >> shift) & GATE_TLS))
		inside = bpf_map_lookup_elem(&ssl_calls, &pid_tgid);
	/* Lookups before the registers: a socket known not to carry HTTP, or
	 * a TLS connection's ciphertext, leaves without reading them. */
	c = inside ? 0 : bpf_map_lookup_elem(&conns, &key);
	/* TLS: handshakes and alerts outside SSL_read/SSL_write. */
	if (c && (c->tls || c->left_out))
		return;
	if (!c && !inside) {
		first = bpf_map_lookup_elem(&first_bytes, &key);
		if (first && *first == SOCK_NOT_HTTP)
			return;
	}
	regs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
	call.nr = regs->orig_ax;
	if (received ? !is_read(call.nr) : !is_write(call.nr))
		return;
	call.arg0 = regs->di;
	call.arg1 = regs->si;
	call.ret = ret;
	if (inside) {
		/* Ciphertext of an OpenSSL call: it names the call's socket. */
		inside->fd = call.arg0;
		inside->key = key;
		/* Once a call: an SSL_read may receive several times. */
		if (!inside->server.family)
			server_of(sk, inside->op & SSL_OP_WRITE ? HTTP_CLIENT : HTTP_SERVER,
				  &inside->server);
		return;
	}
	call.ns = bpf_core_cast(sk, struct tcp_sock)->tcp_clock_cache;
	if (c) {
		on_bytes(c, &call, tgid, call.arg0);
		return;
	}
	/* A request line, or its start (a method written in pieces). */
	kind = peek_request(&call);
	if (kind == H2_SETTINGS)
		return;
	if (kind) {
		__u8 role = received ? HTTP_SERVER : HTTP_CLIENT;

		server_of(sk, role, &server);
		if (kind == REQUEST_H2)
			begin_h2(0, &call, key, tgid, call.arg0, role, 0, &server);
		else
			begin_request(0, &call, key, tgid, call.arg0, role, 0, &server, 0, 0);
		if (first)
			bpf_map_delete_elem(&first_bytes, &key);
	} else if (first) {
		*first = SOCK_NOT_HTTP;
	}
}

SEC("tp_btf/sock_recv_length")
int BPF_PROG(btf_sock_recv, struct sock *sk, int ret, int flags)
{
	on_socket_bytes(sk, ret, flags, true);
	return 0;
}

SEC("tp_btf/sock_send_length")
int BPF_PROG(btf_sock_send, struct sock *sk, int ret, int flags)
{
	on_socket_bytes(sk, ret, flags, false);
	return 0;
}

/*
 * Socket capture: the ends of connections. The process closed or shut down
 * its end (ESTABLISHED to FIN_WAIT1; CLOSE_WAIT, the peer's end closed
 * first, to LAST_ACK), or the connection is gone (CLOSE: a reset, or the
 * end of either way): what close() is to the syscall capture. These run in
 * the closing process's close() (a reset in softirq), before its fd can be
 * given to a new connection, so a closed connection's DONE comes before the
 * OPEN of one on the same fd. The peer's close alone (to CLOSE_WAIT) ends
 * nothing: a client still reads a response the server closed after. And
 * the starts: a socket established now is FRESH in `first_bytes`.
 */
SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(btf_sock_state, const struct sock *sk, const int old, const int new)
{
	__u64 key = (__u64)sk;
	struct conn *c;

	if (new == TCP_ESTABLISHED) {
		__u8 fresh = SOCK_FRESH;

		/* Full: its bytes are looked at until a request line, as an older one's. */
		if (sk->sk_protocol == IPPROTO_TCP)
			bpf_map_update_elem(&first_bytes, &key, &fresh, BPF_ANY);
		return 0;
	}
	if (new != TCP_FIN_WAIT1 && new != TCP_LAST_ACK && new != TCP_CLOSE)
		return 0;
	if (new == TCP_CLOSE)
		bpf_map_delete_elem(&first_bytes, &key);
	c = bpf_map_lookup_elem(&conns, &key);
	if (!c)
		return 0;
	/* A client that shut its sending end after the request: its response
	 * is still to come. */
	if (new != TCP_CLOSE && c->state == CONN_REQUEST)
		return 0;
	on_close(c);
	bpf_map_delete_elem(&conns, &key);
	return 0;
}

/*
 * Socket capture with `watch_mappings`: the exits of mmap and exec, for
 * MAPPED (the syscall capture sees them in its own program). It turns on
 * the kernel's slow syscall-exit path, which the socket capture otherwise
 * does not pay.
 */
SEC("tp_btf/sys_exit")
int BPF_PROG(btf_mmap_exit, struct pt_regs *regs, long ret)
{
	__u32 tgid;

	if (ret < 0 || !maps_code(regs->orig_ax, regs->dx, regs->r8))
		return 0;
	tgid = bpf_get_current_pid_tgid() >> 32;
	if (tgid != self_tgid)
		send_mapped(tgid);
	return 0;
}

/*
 * OpenSSL: SSL_read(ssl, buf, num), SSL_write(ssl, buf, num) return the
 * bytes moved (<= 0: none); SSL_read_ex(ssl, buf, num, &count) and
 * SSL_write_ex return 1 and write the count. The attach cookie is the
 * SSL_OP_* of the function.
 */
static __always_inline void ssl_enter(struct pt_regs *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tgid = pid_tgid >> 32, shift;
	__u64 *word;
	struct ssl_call call = {
		.ssl = PT_REGS_PARM1(ctx),
		.buf = PT_REGS_PARM2(ctx),
		.fd = -1,
		.op = bpf_get_attach_cookie(ctx),
	};

	if (tgid == self_tgid)
		return;
	word = gate_word(tgid, &shift);
	if (!word)
		return;
	open_gate(word, shift, GATE_TLS);
	if (call.op & SSL_OP_EX)
		call.count_ptr = PT_REGS_PARM4(ctx);
	if (bpf_map_update_elem(&ssl_calls, &pid_tgid, &call, BPF_ANY))
		sonde_count_map_full(&map_full, HTTP_MAP_SSL_CALLS);
}

/* The socket of an OpenSSL call: the one a syscall inside it used, else
 * the one last seen for its SSL object; fd -1 when neither is known. */
static __always_inline struct ssl_socket ssl_socket(const struct ssl_call *call, __u32 tgid)
{
	struct ssl_key key = { .tgid = tgid, .ssl = call->ssl };
	struct ssl_socket used = { .key = call->key, .fd = call->fd }, *known;

	known = bpf_map_lookup_elem(&ssl_fds, &key);
	if (call->fd < 0) {
		if (known)
			return *known;
		return used;
	}
	/* A lookup first: an LRU update per call would cost more. */
	if ((!known || known->key != used.key || known->fd != used.fd) &&
	    bpf_map_update_elem(&ssl_fds, &key, &used, BPF_ANY))
		sonde_count_map_full(&map_full, HTTP_MAP_SSL_FDS);
	return used;
}

/*
 * The plaintext a TLS library's call moved (`call`: NR_READ or NR_WRITE,
 * the buffer, the byte count) on `socket`, whose server end is `server`
 * when known. A connection not seen accepted or connected (the socket
 * capture sees neither under this key; or one opened before sonde) starts
 * with plaintext that is a request, which says which end this process is.
 */
static __always_inline void on_plaintext(struct call *call, struct ssl_socket socket, __u32 tgid,
					 const struct http_addr *server)
{
	struct conn *c;

	if (call->ret <= 0 || socket.fd < 0)
		return;
	call->arg0 = socket.fd;
	c = bpf_map_lookup_elem(&conns, &socket.key);
	if (!c) {
		begin_unknown(call, socket.key, tgid, socket.fd,
			      call->nr == NR_READ ? HTTP_SERVER : HTTP_CLIENT, 1, server);
		return;
	}
	if (!c->tls && !c->left_out) {
		/* The handshake's ciphertext made it look like no HTTP. */
		c->tls = 1;
		c->state = CONN_IDLE;
	}
	on_bytes(c, call, tgid, socket.fd);
}

static __always_inline void ssl_return(struct pt_regs *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tgid = pid_tgid >> 32;
	struct ssl_call *inside = bpf_map_lookup_elem(&ssl_calls, &pid_tgid);
	/* All four return an int: -1 is 0xffffffff in the register. */
	long ret = (int)PT_REGS_RC(ctx);
	struct call call = {};
	struct ssl_socket socket;
	struct http_addr server;

	if (!inside)
		return;
	call.nr = inside->op & SSL_OP_WRITE ? NR_WRITE : NR_READ;
	call.arg1 = inside->buf;
	if (inside->op & SSL_OP_EX) {
		__u64 count = 0;

		if (ret == 1 && inside->count_ptr)
			bpf_probe_read_user(&count, sizeof(count), (const void *)inside->count_ptr);
		ret = count;
	}
	call.ret = ret;
	socket = ssl_socket(inside, tgid);
	server = inside->server;
	bpf_map_delete_elem(&ssl_calls, &pid_tgid);
	on_plaintext(&call, socket, tgid, &server);
}

/* uprobe.multi links (no CAP_SYS_ADMIN needed), one per libssl file. */
SEC("uprobe.multi")
int ssl_enter_multi(struct pt_regs *ctx)
{
	ssl_enter(ctx);
	return 0;
}

SEC("uretprobe.multi")
int ssl_return_multi(struct pt_regs *ctx)
{
	ssl_return(ctx);
	return 0;
}

/* Perf-event uprobes, one per function and file, where uprobe.multi is missing. */
SEC("uprobe")
int ssl_enter_perf(struct pt_regs *ctx)
{
	ssl_enter(ctx);
	return 0;
}

SEC("uretprobe")
int ssl_return_perf(struct pt_regs *ctx)
{
	ssl_return(ctx);
	return 0;
}

/*
 * Go's crypto/tls (Go 1.18+ on x86_64, its register ABI): uprobes on
 * (*Conn).Read(b), (*Conn).Write(b) and (*Conn).Close at their entry, and
 * on each RET instruction of Read for its return: a uretprobe
 * rewrites the return address on the goroutine's stack, which Go moves
 * when it grows (user space finds the RETs in the executable's pclntab).
 * The receiver is in RAX, b's pointer and length in RBX and RCX, Read's
 * result n in RAX, and the goroutine in R14 at both ends: a Read is keyed
 * by its goroutine, which may wake on another thread after waiting for
 * bytes. A Write is taken whole at its entry (see go_tls), so a response's
 * end is when its last Write began. The attach cookie is the GO_OP_* of
 * the point.
 *
 * The socket: a tls.Conn's first field is its net.Conn, an interface whose
 * data word points to a *net.TCPConn, whose first field points to its
 * netFD, whose poll.FD holds Sysfd after a 16-byte mutex (the same in every
 * Go since 1.9). Read from user memory once per tls.Conn, then kept in
 * `ssl_fds`. The connection's key in `conns` is (tgid, fd): the syscall
 * capture's own, whose entry it shares and marks tls as OpenSSL's calls
 * do; the socket capture keys by socket address, so there the two never
 * meet and Close is what ends the connection.
 */
#define GO_OP_WRITE 1  /* (*Conn).Write; else Read */
#define GO_OP_CLOSE 2  /* (*Conn).Close */
#define GO_OP_RETURN 4 /* a RET of Read */

#define GO_CONN_DATA 8 /* tls.Conn.conn's data word */
#define GO_SYSFD 16    /* poll.FD.Sysfd in netFD */

struct go_call_key {
	__u32 tgid;
	__u32 pad;
	__u64 goroutine;
};

struct go_call {
	__u64 conn; /* the *tls.Conn */
	__u64 buf;
};

/*
 * Go TLS reads in progress, by goroutine: an entry lives from a Read's
 * entry to its return, so this is bounded by goroutines inside one
 * at once (a server's idle keep-alive connections each wait in a Read), as
 * `conns` is by connections; user space deletes those of processes that
 * are gone.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct go_call_key);
	__type(value, struct go_call);
} go_calls SEC(".maps");

/* The highest fd a process can have by default (fs.nr_open). */
#define GO_MAX_FD (1 << 20)
/* How many wrappers of a net.Conn are looked through. */
#define GO_WRAPPERS 3

/*
 * The fd of the *net.TCPConn (or another conn of package net) at `conn`;
 * -1 when what is read there is no fd: it is not one (a wrapper's: its
 * net.Conn's itab is where the netFD pointer would be, and the itab's
 * hash where Sysfd would be, above GO_MAX_FD but once in 4,096).
 */
static __always_inline __s64 go_sysfd(__u64 conn)
{
	__u64 netfd;
	__s64 sysfd;

	if (bpf_probe_read_user(&netfd, sizeof(netfd), (const void *)conn) ||
	    bpf_probe_read_user(&sysfd, sizeof(sysfd), (const void *)(netfd + GO_SYSFD)) ||
	    sysfd < 0 || sysfd >= GO_MAX_FD)
		return -1;
	return sysfd;
}

/* The socket of tls.Conn `conn`; fd -1 when its fields lead to none. */
static __always_inline struct ssl_socket go_socket(__u32 tgid, __u64 conn)
{
	struct ssl_key key = { .tgid = tgid, .ssl = conn };
	struct ssl_socket found = { .fd = -1 }, *known;
	__s64 sysfd = -1;
	__u64 data;
	int i;

	known = bpf_map_lookup_elem(&ssl_fds, &key);
	if (known) {
		found.key = known->key;
		found.fd = known->fd;
		return found;
	}
	if (bpf_probe_read_user(&data, sizeof(data), (const void *)(conn + GO_CONN_DATA)))
		return found;
	/* Wrappers whose first field is the net.Conn they wrap (connection
	 * trackers, a listener's limit: Prometheus's server connections have
	 * two): one level down each. */
#pragma unroll
	for (i = 0; i <= GO_WRAPPERS; i++) {
		sysfd = go_sysfd(data);
		if (sysfd >= 0 ||
		    bpf_probe_read_user(&data, sizeof(data), (const void *)(data + GO_CONN_DATA)))
			break;
	}
	if (sysfd < 0)
		return found;
	found.fd = sysfd;
	found.key = fd_key(tgid, sysfd);
	if (bpf_map_update_elem(&ssl_fds, &key, &found, BPF_ANY))
		sonde_count_map_full(&map_full, HTTP_MAP_SSL_FDS);
	return found;
}

/* (*Conn).Close of `conn`: its connection ends. */
static __always_inline void go_close(__u32 tgid, __u64 conn)
{
	struct ssl_key key = { .tgid = tgid, .ssl = conn };
	struct ssl_socket *known = bpf_map_lookup_elem(&ssl_fds, &key);
	struct conn *c;
	__u64 conn_key;

	if (!known)
		return;
	conn_key = known->key;
	bpf_map_delete_elem(&ssl_fds, &key);
	c = bpf_map_lookup_elem(&conns, &conn_key);
	if (!c)
		return;
	on_close(c);
	bpf_map_delete_elem(&conns, &conn_key);
}

static __always_inline void go_tls(struct pt_regs *ctx)
{
	__u64 op = bpf_get_attach_cookie(ctx);
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct go_call_key key = { .tgid = tgid, .goroutine = ctx->r14 };
	struct go_call entered, *inside;
	struct call call = {};

	if (tgid == self_tgid)
		return;
	if (op & GO_OP_CLOSE) {
		go_close(tgid, ctx->ax);
		return;
	}
	if (op & GO_OP_WRITE) {
		/* At its entry: Write writes all of b or fails, and its bytes may
		 * be answered (the client's next request read by another
		 * goroutine, as net/http's background read does) before a return
		 * probe would run. */
		call.nr = NR_WRITE;
		call.arg1 = ctx->bx;
		call.ret = (long)ctx->cx;
		if (call.ret > 0)
			on_plaintext(&call, go_socket(tgid, ctx->ax), tgid, 0);
		return;
	}
	if (!(op & GO_OP_RETURN)) {
		entered.conn = ctx->ax;
		entered.buf = ctx->bx;
		/* Entered again after its stack grew: the same call, the same entry. */
		if (bpf_map_update_elem(&go_calls, &key, &entered, BPF_ANY))
			sonde_count_map_full(&map_full, HTTP_MAP_GO_CALLS);
		return;
	}
	inside = bpf_map_lookup_elem(&go_calls, &key);
	if (!inside)
		return;
	entered = *inside;
	bpf_map_delete_elem(&go_calls, &key);
	call.nr = NR_READ;
	call.arg1 = entered.buf;
	call.ret = (long)ctx->ax;
	if (call.ret > 0)
		on_plaintext(&call, go_socket(tgid, entered.conn), tgid, 0);
}

SEC("uprobe.multi")
int go_tls_multi(struct pt_regs *ctx)
{
	go_tls(ctx);
	return 0;
}

SEC("uprobe")
int go_tls_perf(struct pt_regs *ctx)
{
	go_tls(ctx);
	return 0;
}

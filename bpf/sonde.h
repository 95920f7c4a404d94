/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What every sonde BPF program shares with user space: the structs that are
 * map keys and values, the log2 histogram layout and the map-full counter.
 * libbpf-cargo turns these structs into Rust types in each skeleton, so the
 * layout is written down once, here.
 */
#ifndef SONDE_H
#define SONDE_H

#define TASK_COMM_LEN 16

/*
 * Log2 latency histograms: slot i (0 <= i < SONDE_HIST_SLOTS - 1) counts
 * durations d with 2^(i-1) us < d <= 2^i us (slot 0: d <= 1 us); the last
 * slot counts everything above 2^(SONDE_HIST_SLOTS - 2) us (about 16.8 s).
 * User space turns the slots into Prometheus buckets le = 2^i us.
 */
#define SONDE_HIST_SLOTS 26

struct sonde_hist {
	__u64 slots[SONDE_HIST_SLOTS];
	__u64 sum_ns;
};

/* Highest x86_64 syscall number with its own histogram slot, plus one. */
#define SYSCALLS_MAX_NR 512

/*
 * Who an event is charged to: the process name and the cgroup v2 id of the
 * task (user space resolves the id to a systemd unit or a container). The
 * first member of every per-process key.
 */
struct proc_id {
	__u64 cgroup;
	char comm[TASK_COMM_LEN];
};

struct syscall_count_key {
	struct proc_id who;
	__u32 nr;
	__u32 pad;
};

/* A failed syscall: who made it, its number and the errno it returned. */
struct syscall_error_key {
	struct proc_id who;
	__u32 nr;
	__u32 errno_value;
};

/*
 * Bounded maps of the syscalls collector, in the order of their slots in
 * its map_full counter (user space names them in the same order).
 */
enum syscalls_bounded_map {
	SYSCALLS_MAP_COUNTS,
	SYSCALLS_MAP_ERRORS,
	SYSCALLS_MAP_TASKS, /* task storage: a thread's counters not allocated */
	SYSCALLS_BOUNDED_MAPS,
};

/* The process collector's counters, keyed by proc_id plus a kind. */
enum process_event {
	PROCESS_EXEC,
	PROCESS_FORK,
	PROCESS_EXIT,
	PROCESS_OOM_KILL,
};

/*
 * Exit reasons as stored: 0 for exit code 0, PROCESS_EXIT_NONZERO for any
 * other code, else the number (1-64) of the signal that killed the process.
 */
#define PROCESS_EXIT_NONZERO 256

struct process_key {
	struct proc_id who;
	__u32 event;
	__u32 reason;
};

enum process_bounded_map {
	PROCESS_MAP_COUNTS,
	PROCESS_BOUNDED_MAPS,
};

/*
 * Block I/O: a request's op is the kernel's REQ_OP_* number; read (0),
 * write (1), flush (2) and discard (3) are counted, the rare others skipped.
 */
/* Latency per device (dev_t as the kernel packs it: major << 20 | minor). */
struct block_latency_key {
	__u32 dev;
	__u32 op;
};

struct block_io_key {
	struct proc_id who;
	__u32 dev;
	__u32 op;
};

struct block_io_value {
	__u64 bytes;
	__u64 ops;
};

enum block_bounded_map {
	BLOCK_MAP_LATENCY,
	BLOCK_MAP_IO,
	BLOCK_BOUNDED_MAPS,
};

/* Scheduler: context switches per process and kind. */
enum switch_kind {
	SWITCH_VOLUNTARY,
	SWITCH_INVOLUNTARY,
};

struct switch_key {
	struct proc_id who;
	__u32 kind;
	__u32 pad;
};

/* Scheduler: CPU time per process (struct proc_id), in nanoseconds. */
struct cpu_time {
	__u64 user_ns;
	__u64 system_ns;
};

enum sched_bounded_map {
	SCHED_MAP_SWITCHES,
	SCHED_MAP_LATENCY,
	SCHED_MAP_CPU_TIME,
	SCHED_BOUNDED_MAPS,
};

/* Network: bytes per process, direction and protocol; TCP events per process. */
enum net_direction {
	NET_SENT,
	NET_RECEIVED,
};

struct net_bytes_key {
	struct proc_id who;
	__u32 direction;
	__u32 proto;
};

enum tcp_event {
	TCP_CONNECT_OK,
	TCP_CONNECT_FAILED,
	TCP_ACCEPT,
	TCP_RETRANSMIT,
	TCP_RESET_SENT,
	TCP_RESET_RECEIVED,
	TCP_ESTABLISHED_OPENED,
	TCP_ESTABLISHED_CLOSED,
	TCP_EVENTS,
};

struct tcp_event_key {
	struct proc_id who;
	__u32 event;
	__u32 pad;
};

/* Which of the two TCP histograms a slot of tcp_latency holds. */
enum tcp_histogram {
	TCP_HIST_CONNECT,
	TCP_HIST_LIFETIME,
	TCP_HISTS,
};

enum net_bounded_map {
	NET_MAP_BYTES,
	NET_MAP_TCP,
	NET_MAP_SOCKETS,
	NET_MAP_LISTENERS,
	NET_BOUNDED_MAPS,
};

/*
 * HTTP (bpf/http.bpf.c): one event through the ring buffer per request,
 * DONE, at its end, with its head and its response's (kept in the
 * connection's map entry until then); one OPEN per connection, at its
 * first request, naming who serves (or calls) on it; a RESPONSE for each
 * further response of a pipelined batch. HTTP_HEAD is a power of two: up
 * to HTTP_HEAD - 1 bytes of each head are copied.
 */
#define HTTP_HEAD 512

enum http_event_kind {
	HTTP_EVENT_OPEN,     /* a connection's first request began (struct http_open) */
	HTTP_EVENT_RESPONSE, /* a pipelined batch's next response began (struct http_done) */
	HTTP_EVENT_DONE,     /* a request (or pipelined batch) ended (struct http_done) */
	HTTP_EVENT_CLOSED,   /* a connection OPEN named closed with no request to end */
	HTTP_EVENT_MAPPED,   /* a process mapped a file executable (maybe libssl) or exec'd (maybe Go) */
	HTTP_EVENT_H2,       /* bytes moved on an HTTP/2 connection (struct http_chunk) */
};

/* Which end of a connection the process is. */
enum http_role {
	HTTP_SERVER, /* it reads the requests (it accepted the connection) */
	HTTP_CLIENT, /* it writes them (it connected) */
};

/*
 * The server end of a connection: a client's peer; a server's own address
 * where the capture reads it from the socket (family 0: not known, user
 * space reads it through the fd).
 */
struct http_addr {
	__u8 addr[16];  /* IPv4: the first 4 bytes */
	__u16 port;     /* host order */
	__u16 family;   /* SONDE_AF_INET or SONDE_AF_INET6; 0: not known */
};

/* OPEN; CLOSED and MAPPED use its first fields only. */
struct http_open {
	__u32 kind;
	__u32 tgid;
	__s32 fd;
	__s32 listen_fd; /* accept()'s fd; -1 when not seen or a client */
	__u64 cgroup;
	char comm[TASK_COMM_LEN];
	struct http_addr server;
	__u8 role;          /* enum http_role */
	__u8 pad[3];
	__u32 parent;       /* the process's parent (tgid) */
	__u32 pad2;
	__u64 key;          /* the connection's key in `conns`: user space may leave it out */
};

#define HTTP_DONE_CLOSED 1 /* DONE: the connection closed after it */

/*
 * DONE and RESPONSE, sent with only as many bytes of `data` as they hold:
 * DONE holds the request head (req_len bytes) and right after it the first
 * response's (resp_len); RESPONSE its own head (resp_len) at data[0].
 */
struct http_done {
	__u32 kind;
	__u32 tgid;
	__s32 fd;
	__u16 req_len;
	__u16 resp_len;
	__u64 start_ns;   /* the request's first byte moved */
	__u64 end_ns;     /* DONE: the last response byte moved; RESPONSE: when it began */
	__u64 req_bytes;  /* DONE: all request bytes */
	__u64 resp_bytes; /* DONE: all response bytes; RESPONSE: those of the responses before it */
	__u32 flags;      /* HTTP_DONE_* */
	__u32 pad;
	char data[2 * HTTP_HEAD];
};

/*
 * HTTP/2 (a connection that began with its preface, "PRI * HTTP/2.0"):
 * every read and write of it is sent with what user space needs of its
 * bytes to follow the streams: the program walks each direction's frames
 * and copies every frame's header and every payload but DATA's (header
 * blocks, settings, resets), as pieces; a DATA payload is stepped over by
 * its length. A call whose pieces do not fit in one event is sent as
 * several, each for a stretch of its bytes (`len` of them). `data` holds
 * the pieces, each a __u32 offset in the stretch, a __u16 length, then
 * the bytes; `copied` of it is used. `lost`: the program could not
 * follow this direction's frames from here on (no buffer to read a header
 * from, more steps in a call than H2_EVENTS events of H2_STEPS, or an
 * event of it the ring had no room for). User space decodes the headers (HPACK) and times the
 * streams. H2_PIECE, a power of two, bounds each copy for the verifier,
 * as H2_ROOM does the pieces' start.
 */
#define H2_ROOM 512
#define H2_PIECE 256

struct http_chunk {
	__u32 kind;      /* HTTP_EVENT_H2 */
	__u32 tgid;
	__s32 fd;
	__u8 received;   /* toward the process (a read) */
	__u8 lost;
	__u16 copied;    /* bytes of data[]: pieces */
	__u64 ns;        /* when they moved */
	__u64 len;       /* all bytes moved */
	char data[H2_ROOM + H2_PIECE + 8];
};

enum http_bounded_map {
	HTTP_MAP_CONNS,
	HTTP_MAP_SERVERS,
	HTTP_MAP_EVENTS, /* the ring buffer: events lost */
	HTTP_MAP_SSL_CALLS,
	HTTP_MAP_SSL_FDS,
	HTTP_MAP_GO_CALLS,
	HTTP_BOUNDED_MAPS,
};

/*
 * The event stream (bpf/events.bpf.c): one struct sonde_event through the
 * ring buffer per process exec, exit, fatal signal, OOM kill, TCP connect,
 * accept and listen, and open for writing under a configured path.
 */
enum event_kind {
	EVENT_EXEC,
	EVENT_EXIT,
	EVENT_SIGNAL,
	EVENT_OOM_KILL,
	EVENT_CONNECT,
	EVENT_ACCEPT,
	EVENT_LISTEN,
	EVENT_OPEN_WRITE,
};

/* EXEC: the file name, a NUL, then the arguments (NUL-separated). */
#define EVENT_DATA 512
/* Paths of events_write_prefixes: at most this many, each shorter than EVENT_PREFIX. */
#define EVENT_PREFIXES 8
#define EVENT_PREFIX 64

/*
 * A process as the stream names it: pids are reused, so its identity is the
 * pid plus its start time (task->start_time of the thread group leader,
 * CLOCK_MONOTONIC ns), for it and for its parent.
 */
struct event_proc {
	__u64 start_ns;
	__u64 parent_start_ns;
	__u64 cgroup;
	__u32 pid;
	__u32 ppid;
	char comm[TASK_COMM_LEN];
	char parent_comm[TASK_COMM_LEN];
};

struct sonde_event {
	__u32 kind;   /* enum event_kind */
	__s32 detail; /* EXIT: wait(2) status; SIGNAL: the signal; OPEN_WRITE: the flags */
	__u64 ns;     /* CLOCK_MONOTONIC, as start_ns */
	struct event_proc proc; /* SIGNAL, OOM_KILL: the target; ACCEPT: the listener */
	__u32 sender_pid;       /* SIGNAL: who sent it (0: the kernel); OPEN_WRITE: the directory fd */
	__u16 port;             /* CONNECT, ACCEPT: the peer's; LISTEN: the local one */
	__u16 local_port;       /* CONNECT, ACCEPT */
	__u16 family;           /* SONDE_AF_INET or SONDE_AF_INET6 */
	__u16 pad;
	__u32 len;              /* bytes of data */
	__u8 addr[16];          /* CONNECT, ACCEPT: the peer */
	char data[EVENT_DATA];
};

enum events_bounded_map {
	EVENTS_MAP_RING, /* the ring buffer full: the event is lost */
	EVENTS_MAP_LISTENERS,
	EVENTS_BOUNDED_MAPS,
};

/* Protocols counted in net_bytes_key.proto (IPPROTO_* numbers). */
#define SONDE_AF_INET 2
#define SONDE_AF_INET6 10
#define SONDE_MSG_PEEK 2
#define SONDE_SOCK_STREAM 1

#ifdef __BPF__

#include <bpf/bpf_core_read.h>

/*
 * Bit scans (BPF has no such instruction), straight-line on purpose: a
 * chain of six halving tests gives the verifier 64 paths, each with its own
 * result, through all the code after, which it then checks 64 times (the
 * syscalls object's two movers took 11,000 instructions to verify, the
 * sched object's 6,700; BENCHMARKS.md, "Idle: ring buffers and start").
 * A word with one bit set, times a de Bruijn sequence, has a distinct
 * 6-bit pattern in its top bits, looked up in a table.
 */
static const __u8 sonde_debruijn_bit[64] = {
	0,  1,  48, 2,  57, 49, 28, 3,  61, 58, 50, 42, 38, 29, 17, 4,
	62, 55, 59, 36, 53, 51, 43, 22, 45, 39, 33, 30, 24, 18, 12, 5,
	63, 47, 56, 27, 60, 41, 37, 16, 54, 35, 52, 21, 44, 32, 23, 11,
	46, 26, 40, 15, 34, 20, 31, 10, 25, 14, 19, 9,  13, 8,  7,  6,
};

/* Index of the only set bit of `bit`. */
static __always_inline __u32 sonde_bit_index(__u64 bit)
{
	return sonde_debruijn_bit[(bit * 0x03f79d71b4cb0a89ULL) >> 58];
}

/* Index of the lowest set bit of a non-zero word. */
static __always_inline __u32 sonde_lowest_bit(__u64 word)
{
	return sonde_bit_index(word & -word);
}

/*
 * Takes what a counter holds, leaving 0, in one atomic exchange: two movers
 * racing on one thread (the task iterator and the thread's own exit or last
 * switch) each get a share of it and never the same increments twice, while
 * its owner keeps adding with atomic adds. Read plainly first, so a counter
 * at 0 costs no locked instruction.
 */
static __always_inline __u32 sonde_take(__u32 *counter)
{
	if (!*counter)
		return 0;
	return __sync_lock_test_and_set(counter, 0);
}

/* floor(log2(v)) for v > 0, 0 for 0: every bit below the highest set, then
 * the highest alone. */
static __always_inline __u32 sonde_log2(__u64 v)
{
	v |= v >> 1;
	v |= v >> 2;
	v |= v >> 4;
	v |= v >> 8;
	v |= v >> 16;
	v |= v >> 32;
	return sonde_bit_index(v - (v >> 1));
}

/*
 * Slot of a duration in a sonde_hist: the smallest i with ns <= 1000 * 2^i.
 * With L = floor(log2(ns)) that is L - 9 or L - 8 (512 < 1000 < 1024), so
 * one comparison replaces a division by 1000 on the hot path.
 */
static __always_inline __u32 sonde_hist_slot(__u64 ns)
{
	__u32 slot;

	if (ns <= 1000)
		return 0;
	slot = sonde_log2(ns) - 9;
	if (ns > (1000ULL << slot))
		slot++;
	return slot < SONDE_HIST_SLOTS - 1 ? slot : SONDE_HIST_SLOTS - 1;
}

/*
 * Double-buffered maps: the counters keyed by who (process, cgroup) hold only
 * what changed since user space last read them, so a map's size bounds the
 * distinct keys of one collection interval, not of sonde's lifetime. Each is
 * declared as two halves, NAME_0 and NAME_1, of the same shape; programs
 * write to the half `sonde_generation` names. Once a round user space
 * (src/collect/bpf/drain.rs):
 * 1. flips `sonde_generation` (the object's .bss, mapped into user space);
 * 2. waits until every program run that began before the flip has ended:
 *    the kernel makes an update of a map-of-maps wait for every running
 *    non-sleepable BPF program, which is what every sonde program is;
 * 3. reads and deletes every entry of the half left behind, which no
 *    program writes any more, and adds it to the running totals it exports.
 * Invariant: an increment lands in exactly one half and is read from it
 * exactly once. So an update picks its half once, with SONDE_HALF, and does
 * its lookup, insert and add in that one map.
 *
 * The halves allocate entries as keys come (BPF_F_NO_PREALLOC): a half
 * holds one interval's keys, far fewer than its bound on most hosts, while
 * a preallocated per-CPU hash holds its bound of values on every CPU (the
 * per-CPU halves' values alone: about 100 MiB of kernel memory on 64 CPUs)
 * and took 4-5 ms to create here, a fifth of sonde's start. An insert (a
 * key's first event of an interval) takes an entry from the kernel's
 * per-CPU caches; lookups and adds cost what they did.
 */
volatile __u32 sonde_generation;

#define SONDE_DOUBLE_BUFFERED(name, map_type, entries, key_type, value_type) \
	struct name##_half {                                                    \
		__uint(type, map_type);                                         \
		__uint(map_flags, BPF_F_NO_PREALLOC);                           \
		__uint(max_entries, entries);                                   \
		__type(key, key_type);                                          \
		__type(value, value_type);                                      \
	};                                                                      \
	struct name##_half name##_0 SEC(".maps");                               \
	struct name##_half name##_1 SEC(".maps")

/* The half of a double-buffered map that programs write now. */
#define SONDE_HALF(name) (sonde_generation & 1 ? (void *)&name##_1 : (void *)&name##_0)

/*
 * Declares a collector's map_full counter: one per-CPU slot per bounded map,
 * bumped when an insert finds the map full, so a full map is never silent.
 */
#define SONDE_MAP_FULL_COUNTER(slots)                      \
	struct {                                           \
		__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);   \
		__uint(max_entries, slots);                \
		__type(key, __u32);                        \
		__type(value, __u64);                      \
	} map_full SEC(".maps")

static __always_inline void sonde_count_map_full(void *map_full, __u32 slot)
{
	__u64 *full = bpf_map_lookup_elem(map_full, &slot);

	if (full)
		*full += 1;
}

/*
 * A ring buffer's reader and when to wake it (src/collect/bpf/ring.rs).
 * While events come the reader drains the ring every 50 ms (5 ms while
 * many come) and is woken only when the unread bytes pass a multiple of a
 * quarter of the ring (2^`wakeup_shift` bytes): a wakeup is an
 * inter-processor interrupt (in a VM, an exit), microseconds an event.
 * Only at the crossing: when every event past the mark woke the reader,
 * each paid that interrupt until the reader got a CPU and drained the
 * ring, a few to hundreds a time under load (BENCHMARKS.md, HTTP, "One
 * wakeup per crossing"). The unread bytes are looked at on one event in
 * SONDE_RING_CHECK_EVERY of each CPU (`ring_checks`, per CPU): reading the
 * ring's positions at every event was 7 % of the http capture's BPF time
 * (BENCHMARKS.md, HTTP, "The socket capture"), and a crossing is then seen
 * at most that many of a CPU's events late, a few KiB of a quarter. Each
 * CPU compares with what it saw at its last look, so a crossing wakes the
 * reader once per CPU that sees it, at most. An idle reader sleeps longer
 * instead (ring.rs), with `reader_asleep` set (one u32, an array lookup
 * the verifier inlines), looked at on every event, so an idle host pays
 * no wakeups; the first event after wakes it and clears the flag, and is
 * read at once. Two CPUs may both see it asleep: one wakeup too many.
 *
 * The ring's size is user space's to choose (`[collect.bpf]
 * http_ring_size`, `event_ring_size`): it sets the ring's max_entries and
 * `wakeup_shift` (log2 of a quarter of it) before loading. A shift of 0,
 * were it left unset, wakes the reader at every look: slower, never late.
 */
#define SONDE_RING_CHECK_EVERY 16

struct sonde_ring_check {
	__u64 seen;   /* the unread bytes at this CPU's last look */
	__u32 events; /* this CPU's events since the program loaded */
	__u32 pad;
};

#define SONDE_RING_READER()                                 \
	struct {                                            \
		__uint(type, BPF_MAP_TYPE_ARRAY);           \
		__uint(max_entries, 1);                     \
		__type(key, __u32);                         \
		__type(value, __u32);                       \
	} reader_asleep SEC(".maps");                       \
	struct {                                            \
		__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);    \
		__uint(max_entries, 1);                     \
		__type(key, __u32);                         \
		__type(value, struct sonde_ring_check);     \
	} ring_checks SEC(".maps");                         \
	const volatile __u32 wakeup_shift

/* The flags of the commit of an event to `ring`: wake the reader or not. */
static __always_inline __u64 sonde_ring_flags(void *ring, void *reader_asleep, void *ring_checks,
					      __u32 wakeup_shift)
{
	__u32 zero = 0;
	__u32 *asleep = bpf_map_lookup_elem(reader_asleep, &zero);
	struct sonde_ring_check *check;
	__u64 unread, crossed;

	if (asleep && *asleep) {
		*asleep = 0;
		return BPF_RB_FORCE_WAKEUP;
	}
	check = bpf_map_lookup_elem(ring_checks, &zero);
	if (!check)
		return BPF_RB_FORCE_WAKEUP;
	if (++check->events % SONDE_RING_CHECK_EVERY)
		return BPF_RB_NO_WAKEUP;
	unread = bpf_ringbuf_query(ring, BPF_RB_AVAIL_DATA);
	crossed = unread >> wakeup_shift > check->seen >> wakeup_shift;
	check->seen = unread;
	return crossed ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
}

/* Commits `ev`, reserved in `ring`, waking the reader as sonde_ring_flags says. */
static __always_inline void sonde_ring_submit(void *ring, void *reader_asleep, void *ring_checks,
					      void *ev, __u32 wakeup_shift)
{
	bpf_ringbuf_submit(ev, sonde_ring_flags(ring, reader_asleep, ring_checks, wakeup_shift));
}

/*
 * Adds one to a per-CPU hash counter, inserting the key on first sight.
 * Returns 0, or -1 when the map is full (the caller counts that).
 */
static __always_inline int sonde_percpu_count(void *map, const void *key)
{
	__u64 one = 1, *count = bpf_map_lookup_elem(map, key);

	if (count) {
		*count += 1;
		return 0;
	}
	if (bpf_map_update_elem(map, key, &one, BPF_NOEXIST) == 0)
		return 0;
	/* Another CPU inserted the key first, or the map is full. */
	count = bpf_map_lookup_elem(map, key);
	if (!count)
		return -1;
	*count += 1;
	return 0;
}

/* Fills a proc_id from the current task. */
static __always_inline void sonde_current(struct proc_id *who)
{
	who->cgroup = bpf_get_current_cgroup_id();
	bpf_get_current_comm(who->comm, sizeof(who->comm));
}

/* Fills a proc_id from any task (cold paths: it reads through pointers). */
static __always_inline void sonde_task_who(struct task_struct *task, struct proc_id *who)
{
	who->cgroup = BPF_CORE_READ(task, cgroups, dfl_cgrp, kn, id);
	BPF_CORE_READ_STR_INTO(&who->comm, task, comm);
}

/* Adds `delta` to a u64 in a per-CPU hash, inserting it on first sight.
 * Returns 0, or -1 when the map is full. */
static __always_inline int sonde_percpu_add(void *map, const void *key, __u64 delta)
{
	__u64 *value = bpf_map_lookup_elem(map, key);

	if (value) {
		*value += delta;
		return 0;
	}
	if (bpf_map_update_elem(map, key, &delta, BPF_NOEXIST) == 0)
		return 0;
	value = bpf_map_lookup_elem(map, key);
	if (!value)
		return -1;
	*value += delta;
	return 0;
}

/*
 * The value of `key` in a hash, inserted as `zero` on first sight; NULL when
 * the map is full.
 */
static __always_inline void *sonde_lookup_or_insert(void *map, const void *key, const void *zero)
{
	void *value = bpf_map_lookup_elem(map, key);

	if (value)
		return value;
	/* Fails harmlessly when another CPU inserted the key first. */
	bpf_map_update_elem(map, key, zero, BPF_NOEXIST);
	return bpf_map_lookup_elem(map, key);
}

/*
 * Adds `delta` to a u64 in a hash shared by all CPUs (atomically: several
 * CPUs may add to one key), inserting it on first sight. Returns 0, or -1
 * when the map is full.
 */
static __always_inline int sonde_shared_add(void *map, const void *key, __u64 delta)
{
	__u64 zero = 0, *value = sonde_lookup_or_insert(map, key, &zero);

	if (!value)
		return -1;
	__sync_fetch_and_add(value, delta);
	return 0;
}

/* Adds one duration to a histogram in a per-CPU hash keyed by `key`. */
static __always_inline int sonde_hist_add(void *map, const void *key, __u64 ns)
{
	static const struct sonde_hist empty;
	struct sonde_hist *hist = sonde_lookup_or_insert(map, key, &empty);

	if (!hist)
		return -1;
	hist->slots[sonde_hist_slot(ns)] += 1;
	hist->sum_ns += ns;
	return 0;
}

#endif /* __BPF__ */

#endif /* SONDE_H */

// SPDX-License-Identifier: GPL-2.0
/*
 * The syscalls collector: every syscall counted per (process name, cgroup,
 * syscall number), its latency in a log2 histogram per syscall, failures per
 * (process name, cgroup, syscall, errno).
 *
 * Cost is the design constraint: this runs twice per syscall on every CPU,
 * and on this kernel every helper call is a call and a return through the
 * speculation thunks, several nanoseconds each. The hot path builds no key,
 * touches no hash and makes two helper calls per syscall, both at entry:
 * each thread's task storage holds a counter per syscall number, and
 * sys_enter adds one to its own counter.
 *
 * Latency is timed on a sample of calls, about one in `sample_every` per
 * thread (at random gaps, so a loop of a fixed period is not always timed at
 * the same call): only a timed call reads the clock, at entry and at exit,
 * and bumps a per-CPU histogram slot indexed by syscall number. A timed call
 * in flight is kept in `timed_calls`, a table indexed by a hash of its
 * thread, so sys_exit finds out whether its call was timed with an inlined
 * array lookup and a compare, and no helper call: the thread is named by the
 * address of its saved user registers, which both raw tracepoints receive as
 * their first argument (unique among living threads; the tracefs variant
 * names it by its task instead). Every call is still counted, so user space
 * scales the sampled histogram to the exact counts
 * (src/collect/bpf/syscalls.rs).
 * Who the counts belong to (comm, cgroup) is only looked up when they are
 * moved into the shared `syscall_counts` hash:
 * - by the task iterator `flush_counts`, which user space runs before every
 *   read of the map, for every thread;
 * - by `sched_process_exit`, for a thread that ends between two reads.
 * So a count is charged to the name and cgroup its thread has when it is
 * moved (at most one collection interval after the syscall). The hash is
 * double-buffered (sonde.h): it holds what was moved since user space last
 * drained it, and user space keeps the totals.
 *
 * A failure is rarer than a call, so sys_exit charges it to its process
 * right away and counts every one, timed or not: the syscall number, name
 * and cgroup are read only when the return value is an error, never on
 * success, and the failure goes straight into a per-CPU half of
 * `syscall_errors`, double-buffered like the counts.
 *
 * Invariant: a count is in exactly one place, a thread's counter, a half of
 * `syscall_counts` or the totals in user space. The owner adds with an
 * atomic add; a mover reads a counter and subtracts what it read with
 * another atomic add before it credits the half it picked, so increments
 * racing with a move are never lost or counted twice; a half is drained
 * only once no program can still write it.
 *
 * Two attach variants share the code: raw_tp (no tracefs, cheapest) and
 * tracefs tracepoints for kernels or permissions without raw_tp.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "sonde.h"

char LICENSE[] SEC("license") = "GPL";

/*
 * Syscall numbers counted in task storage; rarer, higher numbers (and
 * compat ones) go to the hash straight away. 472 counters and their bitmap
 * keep a thread's storage value at 1,968 bytes, about 2 KiB with the
 * kernel's element header; x86_64's highest syscall is 469 on Linux 6.18.
 */
#define TASK_COUNTED_SYSCALLS 472
/* Words of the `used` bitmap: (472 + 63) / 64, a power of two for masking. */
#define USED_WORDS 8

struct task_syscalls {
	__u32 until_timed; /* calls still to pass untimed before the next timed one */
	__u32 counts[TASK_COUNTED_SYSCALLS];
	/*
	 * Bit nr set once the thread has made syscall nr, so moving its counts
	 * visits the few numbers a thread uses, not all of them. Only the
	 * thread itself writes it; bits are never cleared.
	 */
	__u64 used[USED_WORDS];
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct task_syscalls);
} task_syscalls SEC(".maps");

/*
 * Calls moved out of threads' storage since the last read, double-buffered
 * (sonde.h). A process name uses 30-50 syscall numbers, so a half holds
 * the calls of about 400 distinct (name, cgroup) pairs a collection
 * interval; a half is about 1.6 MiB of kernel memory (32-byte key, 8-byte
 * value, the hash's element header), preallocated.
 */
SONDE_DOUBLE_BUFFERED(syscall_counts, BPF_MAP_TYPE_HASH, 16384, struct syscall_count_key, __u64);

/*
 * Failures since the last read by (process, syscall, errno), double-buffered
 * (sonde.h). A process fails with a handful of (syscall, errno) pairs, so a
 * half holds the failures of about 1,000 distinct names an interval; per-CPU,
 * so a busy process's EAGAINs on many CPUs do not contend for one counter.
 * A half is 4,096 32-byte keys with their element headers and 8 bytes per
 * CPU each: about 0.35 MiB plus 32 KiB per CPU, preallocated.
 */
SONDE_DOUBLE_BUFFERED(syscall_errors, BPF_MAP_TYPE_PERCPU_HASH, 4096, struct syscall_error_key,
		      __u64);

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SYSCALLS_MAX_NR);
	__type(key, __u32);
	__type(value, struct sonde_hist);
} syscall_latency SEC(".maps");

SONDE_MAP_FULL_COUNTER(SYSCALLS_BOUNDED_MAPS);

/*
 * Slots of `timed_calls`, a power of two. About one thread in
 * `sample_every` is in a timed call at any moment (most of them blocked), so
 * 16,384 slots leave a new timed call a free slot unless a machine has
 * tens of thousands of threads; a call that finds its slot taken is simply
 * not timed, which costs the sample a call but does not bias it by how long
 * calls take. 24 bytes a slot: 384 KiB, preallocated.
 */
#define TIMED_SLOTS 16384
#define TIMED_SLOT_BITS 14

/*
 * A timed call in flight. Invariant: `thread` is non-zero exactly while the
 * thread it names is between the entry and the exit of a timed call; only
 * that thread writes the slot then, and it frees it at exit. No slot
 * outlives its call, because no program can miss the exit of a timed call:
 * sys_exit is attached before sys_enter (src/collect/bpf/syscalls.rs), and
 * exit and exit_group, which never return, are never timed.
 */
struct timed_call {
	__u64 thread;   /* who is in the call (see thread_of_*); 0 when free */
	__u64 start_ns; /* when it entered */
	__u32 nr;       /* its syscall number */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, TIMED_SLOTS);
	__type(key, __u32);
	__type(value, struct timed_call);
} timed_calls SEC(".maps");

/* x86_64's exit and exit_group: they never return, so they are never timed. */
#define NR_EXIT 60
#define NR_EXIT_GROUP 231

/*
 * Set by user space before loading: false when only counts are wanted
 * (`syscall_latency = false`), so sys_enter skips the sampling and no
 * sys_exit program is attached; the verifier then drops the dead code.
 */
const volatile bool measure_latency = true;

/*
 * About one call in this many is timed, per thread
 * (`syscall_latency_sample`); 1 times every call.
 */
const volatile __u32 sample_every = 1;

/* Adds `n` calls of `key->nr` by `key->who` to the shared hash. */
static __always_inline void credit(struct syscall_count_key *key, __u64 n)
{
	if (sonde_shared_add(SONDE_HALF(syscall_counts), key, n))
		sonde_count_map_full(&map_full, SYSCALLS_MAP_COUNTS);
}

/* The slow path of a count by the current task: straight into the hash. */
static __always_inline void credit_one(__u32 nr)
{
	struct syscall_count_key key = { .nr = nr };

	sonde_current(&key.who);
	credit(&key, 1);
}

/*
 * Untimed calls before the next timed one: uniform in [0, 2 * sample_every
 * - 2], so one call in sample_every is timed on average.
 */
static __always_inline __u32 next_gap(void)
{
	if (sample_every <= 1)
		return 0;
	return bpf_get_prandom_u32() % (2 * sample_every - 1);
}

/*
 * The slot of `thread` in `timed_calls`: the top bits of a multiplicative
 * hash, since the names of threads (kernel stack and task addresses) share
 * their low bits.
 */
static __always_inline struct timed_call *timed_slot(__u64 thread)
{
	__u32 slot = (thread * 0x9E3779B97F4A7C15ULL) >> (64 - TIMED_SLOT_BITS);

	return bpf_map_lookup_elem(&timed_calls, &slot);
}

/* Starts timing syscall `nr` of `thread`, unless another thread holds its slot. */
static __always_inline void time_enter(__u64 thread, __u32 nr)
{
	struct timed_call *timed = timed_slot(thread);

	if (!timed || nr == NR_EXIT || nr == NR_EXIT_GROUP)
		return;
	if (__sync_val_compare_and_swap(&timed->thread, 0, thread) != 0)
		return;
	timed->nr = nr;
	timed->start_ns = bpf_ktime_get_ns();
}

/* Counts a call; returns whether to time it. */
static __always_inline bool on_enter(long id)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct task_syscalls *mine;
	__u32 nr = (__u32)id;

	mine = bpf_task_storage_get(&task_syscalls, task, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!mine) {
		/* Out of memory for this thread's storage: still count the call. */
		sonde_count_map_full(&map_full, SYSCALLS_MAP_TASKS);
		credit_one(nr);
		return false;
	}
	if (nr < TASK_COUNTED_SYSCALLS) {
		if (!mine->counts[nr])
			mine->used[(nr / 64) & (USED_WORDS - 1)] |= 1ULL << (nr % 64);
		__sync_fetch_and_add(&mine->counts[nr], 1);
	} else
		credit_one(nr);
	if (!measure_latency)
		return false;
	if (mine->until_timed) {
		mine->until_timed--;
		return false;
	}
	mine->until_timed = next_gap();
	return true;
}

/* Ends the timing of `thread`'s syscall, if it was timed. */
static __always_inline void time_exit(__u64 thread)
{
	struct timed_call *timed = timed_slot(thread);
	struct sonde_hist *hist;
	__u64 took;
	__u32 nr;

	/* Not timed (the common case), or it entered before sonde attached. */
	if (!timed || timed->thread != thread)
		return;
	took = bpf_ktime_get_ns() - timed->start_ns;
	nr = timed->nr;
	/* Read before freeing: another thread may claim the slot right after. */
	timed->thread = 0;

	hist = bpf_map_lookup_elem(&syscall_latency, &nr);
	if (hist) {
		hist->slots[sonde_hist_slot(took)] += 1;
		hist->sum_ns += took;
	}
}

/* Whether a syscall's return value is an error (-4095 to -1). */
static __always_inline bool failed(long ret)
{
	return ret < 0 && ret >= -4095;
}

/* Counts a failure of syscall `nr` by the current task. */
static __always_inline void count_error(__u32 nr, long ret)
{
	struct syscall_error_key key = { .nr = nr, .errno_value = (__u32)-ret };

	/* Who failed: looked up here only, a successful call never pays it. */
	sonde_current(&key.who);
	if (sonde_percpu_count(SONDE_HALF(syscall_errors), &key))
		sonde_count_map_full(&map_full, SYSCALLS_MAP_ERRORS);
}

/* Index of the lowest set bit of a non-zero word. */
static __always_inline __u32 lowest_bit(__u64 word)
{
	__u32 bit = 0;

	if (!(word & 0xffffffffULL)) { word >>= 32; bit += 32; }
	if (!(word & 0xffffULL)) { word >>= 16; bit += 16; }
	if (!(word & 0xffULL)) { word >>= 8; bit += 8; }
	if (!(word & 0xfULL)) { word >>= 4; bit += 4; }
	if (!(word & 0x3ULL)) { word >>= 2; bit += 2; }
	if (!(word & 0x1ULL)) { bit += 1; }
	return bit;
}

struct move_state {
	struct task_syscalls *counts;
	struct syscall_count_key key;
	__u64 word;  /* bits of `used` still to visit in the current word */
	__u32 base;  /* syscall number of the current word's bit 0 */
};

static long move_one(__u32 i, struct move_state *state)
{
	__u32 nr, n;

	if (!state->word)
		return 1;
	nr = state->base + lowest_bit(state->word);
	state->word &= state->word - 1;
	if (nr >= TASK_COUNTED_SYSCALLS)
		return 1;
	n = state->counts->counts[nr];
	if (n) {
		__sync_fetch_and_add(&state->counts->counts[nr], -n);
		state->key.nr = nr;
		credit(&state->key, n);
	}
	return 0;
}

static long move_word(__u32 w, struct move_state *state)
{
	state->word = state->counts->used[w & (USED_WORDS - 1)];
	state->base = w * 64;
	bpf_loop(64, move_one, state, 0);
	return 0;
}

/*
 * Moves a thread's counters into `syscall_counts` (see the invariant),
 * visiting only the syscall numbers it has used. bpf_loop callbacks, so the
 * verifier checks each body once, not per syscall number.
 */
static __always_inline void move_counts(struct task_struct *task)
{
	struct move_state state = {};

	state.counts = bpf_task_storage_get(&task_syscalls, task, 0, 0);
	if (!state.counts)
		return;
	sonde_task_who(task, &state.key.who);
	bpf_loop(USED_WORDS, move_word, &state, 0);
}

/*
 * A thread named by where its user registers are saved, on its kernel
 * stack: the raw tracepoints' first argument, so naming costs nothing.
 */
static __always_inline __u64 thread_of_regs(struct pt_regs *regs)
{
	return (__u64)regs;
}

/* A thread named by its task: the tracefs tracepoints do not pass regs. */
static __always_inline __u64 thread_of_task(void)
{
	return bpf_get_current_task();
}

SEC("raw_tp/sys_enter")
int BPF_PROG(raw_sys_enter, struct pt_regs *regs, long id)
{
	if (on_enter(id))
		time_enter(thread_of_regs(regs), id);
	return 0;
}

SEC("raw_tp/sys_exit")
int BPF_PROG(raw_sys_exit, struct pt_regs *regs, long ret)
{
	time_exit(thread_of_regs(regs));
	if (failed(ret))
		count_error(BPF_CORE_READ(regs, orig_ax), ret);
	return 0;
}

/* Fires in do_exit with the exiting thread current. */
SEC("raw_tp/sched_process_exit")
int raw_process_exit(void *ctx)
{
	move_counts(bpf_get_current_task_btf());
	return 0;
}

SEC("tracepoint/raw_syscalls/sys_enter")
int tp_sys_enter(struct trace_event_raw_sys_enter *ctx)
{
	if (on_enter(ctx->id))
		time_enter(thread_of_task(), ctx->id);
	return 0;
}

SEC("tracepoint/raw_syscalls/sys_exit")
int tp_sys_exit(struct trace_event_raw_sys_exit *ctx)
{
	time_exit(thread_of_task());
	if (failed(ctx->ret))
		count_error(ctx->id, ctx->ret);
	return 0;
}

SEC("tracepoint/sched/sched_process_exit")
int tp_process_exit(void *ctx)
{
	move_counts(bpf_get_current_task_btf());
	return 0;
}

/* Run by user space (reading the iterator) before it reads the counts. */
SEC("iter/task")
int flush_counts(struct bpf_iter__task *ctx)
{
	struct task_struct *task = ctx->task;

	if (task)
		move_counts(task);
	return 0;
}

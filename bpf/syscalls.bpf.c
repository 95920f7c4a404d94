// SPDX-License-Identifier: GPL-2.0
/*
 * The syscalls collector: every syscall counted per (process name, cgroup,
 * syscall number), its latency in a log2 histogram per syscall, failures per
 * (process name, cgroup, syscall, errno).
 *
 * Cost is the design constraint: this runs twice per syscall on every CPU,
 * and on this kernel every helper call is a call and a return through the
 * speculation thunks, several nanoseconds each. So the hot path builds no
 * key, touches no hash and makes no helper call: each thread has a counter
 * per syscall number in its own slot of `thread_counts`, an array indexed by
 * a hash of the thread (an inlined lookup), and sys_enter adds one to its
 * own counter. The thread is named by the address of its saved user
 * registers, which both raw tracepoints receive as their first argument:
 * unique among living threads, and free to read (the tracefs variant and
 * the movers get it from the task, `thread_of_task`). A thread that finds
 * every slot it may use taken keeps its counters in its task storage
 * instead, which costs two helper calls per syscall.
 *
 * Latency is timed on a sample of calls, about one in `sample_every` per
 * thread (at random gaps, so a loop of a fixed period is not always timed at
 * the same call): only a timed call reads the clock, at entry and at exit,
 * and bumps a per-CPU histogram slot indexed by syscall number. A timed call
 * in flight is kept in `timed_calls`, a table indexed by a hash of its
 * thread, so sys_exit finds out whether its call was timed with an inlined
 * array lookup and a compare. Every call is still counted, so user space
 * scales the sampled histogram to the exact counts
 * (src/collect/bpf/syscalls.rs).
 *
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
 * Invariant: a count is in exactly one place, a thread's counter (in its
 * slot or its task storage), a half of `syscall_counts` or the totals in
 * user space. The owner adds with an atomic add; a mover takes a counter
 * with an atomic exchange (`sonde_take`) before it credits the half it
 * picked, so increments racing with a move are never lost, and an exiting
 * thread that `flush_counts` and `sched_process_exit` move at once is
 * counted once (a read then a subtraction let both credit it); a half is
 * drained only once no program can still write it.
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
 * Syscall numbers counted per thread; rarer, higher numbers (and compat
 * ones) go to the hash straight away. 472 counters and their bitmap keep a
 * thread's counters at 1,960 bytes; x86_64's highest syscall is 469 on
 * Linux 6.18.
 */
#define TASK_COUNTED_SYSCALLS 472
/* Words of the `used` bitmap: (472 + 63) / 64, a power of two for masking. */
#define USED_WORDS 8

/* A thread's counters, in its slot of `thread_counts` or its task storage. */
struct thread_syscalls {
	__u32 until_timed; /* calls still to pass untimed before the next timed one */
	__u32 counts[TASK_COUNTED_SYSCALLS];
	/*
	 * Bit nr set once the thread has made syscall nr, so moving its counts
	 * visits the few numbers a thread uses, not all of them. Only the
	 * thread itself sets bits; they are cleared only when its slot is
	 * freed.
	 */
	__u64 used[USED_WORDS];
};

/*
 * Slots of `thread_counts`, a power of two, and the slots a thread may use:
 * PROBES in a row from where its hash points, so threads whose hashes meet
 * still find a slot of their own while fewer than about 3 in 4 slots are
 * taken. 1,024 slots of 1,968 bytes: about 2 MiB, preallocated; the threads
 * beyond them (a server of thousands of threads) fall back to task storage.
 */
#define COUNTED_THREADS 1024
#define COUNTED_THREAD_BITS 10
#define PROBES 4

/*
 * What a slot's `thread` holds besides the name of its owner. Invariants: a
 * free slot's counters and bitmap are all zero; a slot is claimed (free to
 * owned) only by its owner's own sys_enter, with a compare-and-swap;
 * `sched_process_exit` moves an exiting owner's counts and marks its slot
 * dead; only the end of a `flush_counts` pass frees dead slots, so a slot
 * changes owner only between two passes and a pass never moves one thread's
 * counts under another's name.
 */
#define SLOT_FREE 0
#define SLOT_DEAD 1 /* no thread is named 1: names are kernel addresses */

struct counted_thread {
	__u64 thread; /* the owner's name, SLOT_FREE or SLOT_DEAD */
	struct thread_syscalls syscalls;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, COUNTED_THREADS);
	__type(key, __u32);
	__type(value, struct counted_thread);
} thread_counts SEC(".maps");

/* Counters of the threads without a slot: about 2 KiB each, on demand. */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct thread_syscalls);
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
 * Set by user space before loading: false keeps every thread's counters in
 * its task storage, as if no slot were ever free (SONDE_BPF_REFUSE names
 * `thread_counts`), so tests can show that path exact.
 */
const volatile bool count_in_slots = true;

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
 * Where `thread` hashes in a table of 2^bits slots: the top bits of a
 * multiplicative hash, since the names of threads (addresses on their
 * kernel stacks) share their low bits.
 */
static __always_inline __u32 thread_hash(__u64 thread, __u32 bits)
{
	return (thread * 0x9E3779B97F4A7C15ULL) >> (64 - bits);
}

/* The slot of `thread` in `timed_calls`. */
static __always_inline struct timed_call *timed_slot(__u64 thread)
{
	__u32 slot = thread_hash(thread, TIMED_SLOT_BITS);

	return bpf_map_lookup_elem(&timed_calls, &slot);
}

/*
 * The slot `thread` owns in `thread_counts`, or NULL; then `*free_index` is
 * the first free slot among its probes (COUNTED_THREADS when none is).
 */
static __always_inline struct counted_thread *owned_slot(__u64 thread, __u32 *free_index)
{
	__u32 first = thread_hash(thread, COUNTED_THREAD_BITS);

	*free_index = COUNTED_THREADS;
#pragma unroll
	for (__u32 probe = 0; probe < PROBES; probe++) {
		__u32 index = (first + probe) & (COUNTED_THREADS - 1);
		struct counted_thread *slot = bpf_map_lookup_elem(&thread_counts, &index);

		if (!slot)
			return NULL;
		if (slot->thread == thread)
			return slot;
		if (slot->thread == SLOT_FREE && *free_index == COUNTED_THREADS)
			*free_index = index;
	}
	return NULL;
}

/*
 * The counters of the calling thread `thread`: its slot, claimed on its
 * first call while one of its probes is free, else its task storage.
 */
static __always_inline struct thread_syscalls *counters_of(__u64 thread)
{
	struct counted_thread *slot = NULL;
	__u32 free_index;

	if (count_in_slots)
		slot = owned_slot(thread, &free_index);
	if (count_in_slots && !slot && free_index < COUNTED_THREADS) {
		slot = bpf_map_lookup_elem(&thread_counts, &free_index);
		if (slot && __sync_val_compare_and_swap(&slot->thread, SLOT_FREE, thread) != SLOT_FREE)
			slot = NULL;
	}
	if (slot)
		return &slot->syscalls;
	return bpf_task_storage_get(&task_syscalls, bpf_get_current_task_btf(), 0,
				    BPF_LOCAL_STORAGE_GET_F_CREATE);
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

/* Counts a call of `thread`; returns whether to time it. */
static __always_inline bool on_enter(__u64 thread, long id)
{
	struct thread_syscalls *mine = counters_of(thread);
	__u32 nr = (__u32)id;

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

struct move_state {
	struct thread_syscalls *counts;
	struct syscall_count_key key;
	__u64 word;  /* bits of `used` still to visit in the current word */
	__u32 base;  /* syscall number of the current word's bit 0 */
};

static long move_one(__u32 i, struct move_state *state)
{
	__u32 nr, n;

	if (!state->word)
		return 1;
	nr = state->base + sonde_lowest_bit(state->word);
	state->word &= state->word - 1;
	if (nr >= TASK_COUNTED_SYSCALLS)
		return 1;
	n = sonde_take(&state->counts->counts[nr]);
	if (n) {
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
 * The name of `task`'s thread: where its user registers are saved, as the
 * raw tracepoints see it. Cold paths only (two helper calls).
 */
static __always_inline __u64 thread_of_task(struct task_struct *task)
{
	long regs = bpf_task_pt_regs(task);
	__u64 thread = 0;

	/* The verifier keeps a pointer from being hashed: read it as a number. */
	bpf_probe_read_kernel(&thread, sizeof(thread), &regs);
	return thread;
}

/*
 * Moves a thread's counters, in its slot and in its task storage, into
 * `syscall_counts` (see the invariant), visiting only the syscall numbers it
 * has used; when it is `exiting`, marks its slot dead. bpf_loop callbacks,
 * so the verifier checks each body once, not per syscall number.
 */
static __always_inline void move_counts(struct task_struct *task, bool exiting)
{
	__u32 free_index;
	struct counted_thread *slot = owned_slot(thread_of_task(task), &free_index);
	struct move_state state = {};

	sonde_task_who(task, &state.key.who);
	if (slot) {
		state.counts = &slot->syscalls;
		bpf_loop(USED_WORDS, move_word, &state, 0);
		if (exiting)
			slot->thread = SLOT_DEAD;
	}
	state.counts = bpf_task_storage_get(&task_syscalls, task, 0, 0);
	if (state.counts)
		bpf_loop(USED_WORDS, move_word, &state, 0);
}

/* Frees slot `index` if its thread has exited (its counts are all moved). */
static long free_if_dead(__u32 index, void *unused)
{
	struct counted_thread *slot = bpf_map_lookup_elem(&thread_counts, &index);

	if (slot && slot->thread == SLOT_DEAD) {
		__builtin_memset(&slot->syscalls.used, 0, sizeof(slot->syscalls.used));
		slot->syscalls.until_timed = 0;
		slot->thread = SLOT_FREE;
	}
	return 0;
}

/*
 * The calling thread's name, from where its user registers are saved: the
 * raw tracepoints' first argument, so naming costs nothing.
 */
static __always_inline __u64 thread_of_regs(struct pt_regs *regs)
{
	return (__u64)regs;
}

SEC("raw_tp/sys_enter")
int BPF_PROG(raw_sys_enter, struct pt_regs *regs, long id)
{
	__u64 thread = thread_of_regs(regs);

	if (on_enter(thread, id))
		time_enter(thread, id);
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
	move_counts(bpf_get_current_task_btf(), true);
	return 0;
}

/* The tracefs tracepoints do not pass the registers: ask the task. */
SEC("tracepoint/raw_syscalls/sys_enter")
int tp_sys_enter(struct trace_event_raw_sys_enter *ctx)
{
	__u64 thread = thread_of_task(bpf_get_current_task_btf());

	if (on_enter(thread, ctx->id))
		time_enter(thread, ctx->id);
	return 0;
}

SEC("tracepoint/raw_syscalls/sys_exit")
int tp_sys_exit(struct trace_event_raw_sys_exit *ctx)
{
	time_exit(thread_of_task(bpf_get_current_task_btf()));
	if (failed(ctx->ret))
		count_error(ctx->id, ctx->ret);
	return 0;
}

SEC("tracepoint/sched/sched_process_exit")
int tp_process_exit(void *ctx)
{
	move_counts(bpf_get_current_task_btf(), true);
	return 0;
}

/*
 * Run by user space (reading the iterator) before it reads the counts: once
 * per thread, then once without a task at the end of the pass, which frees
 * the slots of the threads that exited before it.
 */
SEC("iter/task")
int flush_counts(struct bpf_iter__task *ctx)
{
	struct task_struct *task = ctx->task;

	if (task)
		move_counts(task, false);
	else
		bpf_loop(COUNTED_THREADS, free_if_dead, NULL, 0);
	return 0;
}

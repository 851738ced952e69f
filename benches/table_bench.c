/* The atomic state table from C: the header-inline access functions and the
 * exported ones against the floor, with 1 thread, 2 threads on one shared
 * handle and 2 threads on distinct handles; random-handle
 * accesses with 1k and 1M live handles; memory per live handle; and
 * register+unregister with 1 and 2 threads. Every figure is a median of
 * repeats, and every target a ratio of medians taken in the same run, the
 * designs interleaved within each repeat (never a timed test).
 *
 *   scripts/bench-table.sh            # builds the release library and this
 *   target/bench/table_bench [REPEATS] [--json FILE]
 *
 * Prints markdown tables (docs/performance.md has the figures); with --json,
 * also writes every median to FILE (scripts/bench-chart.py draws the access
 * medians as docs/access-chart.svg). */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>
#include <unistd.h>

#include "gcsafety.h"

static int repeats = 7;

static double
now_ns (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e9 + ts.tv_nsec;
}

/* The CPU time of the calling thread. */
static double
thread_cpu_ns (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int
compare_doubles (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return (x > y) - (x < y);
}

static double
median (double *values, int n)
{
  qsort (values, n, sizeof *values, compare_doubles);
  return values[n / 2];
}

/* The callback every access runs, called through a pointer the compiler
 * cannot see through. */
static int
empty_callback (void *object, void *user_data)
{
  (void) object;
  (void) user_data;
  return 0;
}

static GcsAccessFn volatile callback_ptr = empty_callback;

static void
release_nothing (void *object, void *user_data)
{
  (void) object;
  (void) user_data;
}

static GcsHandle
register_pointer (void *object)
{
  GcsRegistration r;
  GcsHandle h;
  memset (&r, 0, sizeof r);
  r.struct_size = sizeof r;
  r.kind = GCS_KIND_POINTER;
  r.object = object;
  r.type_name = "bench";
  r.release = release_nothing;
  if (gcs_register_full (&r, &h) != GCS_OK) {
    fprintf (stderr, "register: %s\n", gcs_last_error ());
    exit (1);
  }
  return h;
}

/* ---- access: one op, N iterations on one handle ------------------------- */

enum op
{
  OP_FLOOR,
  OP_INLINE_SAFE,
  OP_EXPORTED_SAFE,
  OP_INLINE_BEGIN_END,
  OP_EXPORTED_BEGIN_END,
  OP_COUNT
};

static const char *op_names[OP_COUNT] = {
  "floor: 2 atomic RMWs around an indirect call",
  "`gcs_safe_access_inline`",
  "`gcs_safe_access` (exported)",
  "`gcs_access_begin_inline` + `gcs_access_end_inline`",
  "`gcs_access_begin` + `gcs_access_end` (exported)",
};

/* The designs' names in the JSON output. */
static const char *op_keys[OP_COUNT] = {
  "floor", "safe_access_inline", "safe_access", "begin_end_inline", "begin_end",
};

/* How many threads access, and on which handles. */
enum mode
{
  MODE_ONE_THREAD,
  MODE_SHARED,                  /* 2 threads, one handle registered once */
  MODE_DISTINCT,                /* 2 threads, each its own handle */
  MODE_COUNT
};

static const char *mode_names[MODE_COUNT] = {
  "1 thread", "2 threads, one shared handle", "2 threads, distinct handles",
};

static const char *mode_keys[MODE_COUNT] = {
  "1_thread", "2_threads_shared", "2_threads_distinct",
};

/* The floor's counter when both threads share it: one line for both. */
static _Alignas (128) uint64_t shared_counter;

typedef struct
{
  _Alignas (128) uint64_t counter;      /* the floor's, one line per thread */
  uint64_t *floor_word;         /* &counter, or &shared_counter */
  int index;                    /* which thread: 0 or 1 */
  int own_handle;               /* registers its own object (else `handle` is given) */
  GcsHandle handle;
  void *object;
  enum op op;
  long iterations;
  double ns_per_op;
  double on_cpu;                /* share of the run's wall time it was on a CPU */
  pthread_barrier_t *start;
} AccessJob;

static double
run_access (AccessJob * job)
{
  GcsAccessFn cb = callback_ptr;
  GcsHandle h = job->handle;
  uint64_t *word = job->floor_word;
  long n = job->iterations;
  void *object;
  double cpu0 = thread_cpu_ns ();
  double t0 = now_ns ();
  switch (job->op) {
    case OP_FLOOR:
      for (long i = 0; i < n; i++) {
        __atomic_fetch_add (word, 1, __ATOMIC_ACQUIRE);
        cb (job->object, NULL);
        __atomic_fetch_sub (word, 1, __ATOMIC_RELEASE);
      }
      break;
    case OP_INLINE_SAFE:
      for (long i = 0; i < n; i++)
        gcs_safe_access_inline (h, cb, NULL);
      break;
    case OP_EXPORTED_SAFE:
      for (long i = 0; i < n; i++)
        gcs_safe_access (h, cb, NULL);
      break;
    case OP_INLINE_BEGIN_END:
      for (long i = 0; i < n; i++) {
        gcs_access_begin_inline (h, &object);
        cb (object, NULL);
        gcs_access_end_inline (h);
      }
      break;
    case OP_EXPORTED_BEGIN_END:
      for (long i = 0; i < n; i++) {
        gcs_access_begin (h, &object);
        cb (object, NULL);
        gcs_access_end (h);
      }
      break;
    default:
      break;
  }
  double wall = now_ns () - t0;
  job->on_cpu = (thread_cpu_ns () - cpu0) / wall;
  return wall / n;
}

static void *
access_thread (void *data)
{
  AccessJob *job = data;
  /* Each thread registers its own object, as a thread of a real program
   * does: its slot sits in that thread's block, apart from the other's. */
  static char objects[2][64];
  if (job->own_handle) {
    job->object = objects[job->index];
    job->handle = register_pointer (job->object);
  }
  pthread_barrier_wait (job->start);
  job->ns_per_op = run_access (job);
  if (job->own_handle)
    gcs_unregister (job->handle);
  return NULL;
}

/* ns per access of `op` (each thread's time ÷ its accesses, averaged over
 * the threads) in `mode`: 1 thread on its own handle, 2 threads on one
 * handle registered once (and, for the floor, one counter), or 2 threads on
 * their own handles (and counters, on lines of their own). */
static double
access_sample (enum op op, enum mode mode, long iterations, double *on_cpu)
{
  static char shared_object[64];
  AccessJob jobs[2];
  pthread_t ids[2];
  pthread_barrier_t start;
  int threads = mode == MODE_ONE_THREAD ? 1 : 2;
  GcsHandle shared = 0;
  if (mode == MODE_SHARED)
    shared = register_pointer (shared_object);
  pthread_barrier_init (&start, NULL, threads);
  for (int t = 0; t < threads; t++) {
    memset (&jobs[t], 0, sizeof jobs[t]);
    jobs[t].index = t;
    jobs[t].op = op;
    jobs[t].iterations = iterations;
    jobs[t].start = &start;
    jobs[t].own_handle = mode != MODE_SHARED;
    if (mode == MODE_SHARED) {
      jobs[t].handle = shared;
      jobs[t].object = shared_object;
      jobs[t].floor_word = &shared_counter;
    } else {
      jobs[t].floor_word = &jobs[t].counter;
    }
    pthread_create (&ids[t], NULL, access_thread, &jobs[t]);
  }
  double sum = 0, cpu = 0;
  for (int t = 0; t < threads; t++) {
    pthread_join (ids[t], NULL);
    sum += jobs[t].ns_per_op;
    cpu += jobs[t].on_cpu;
  }
  *on_cpu = cpu / threads;
  pthread_barrier_destroy (&start);
  if (mode == MODE_SHARED)
    gcs_unregister (shared);
  return sum / threads;
}

/* ---- random handles ------------------------------------------------------ */

static double
random_access_sample (const GcsHandle * handles, const uint32_t * order, long n, int use_inline)
{
  GcsAccessFn cb = callback_ptr;
  double t0 = now_ns ();
  if (use_inline)
    for (long i = 0; i < n; i++)
      gcs_safe_access_inline (handles[order[i]], cb, NULL);
  else
    for (long i = 0; i < n; i++)
      gcs_safe_access (handles[order[i]], cb, NULL);
  return (now_ns () - t0) / n;
}

/* The baseline of a random access: the floor's two atomics on a random
 * entry of an array of `live` entries of `stride` bytes, reached through the
 * same index array a caller keeps its handles in. */
static double
random_floor_sample (char *entries, size_t stride, const uint32_t * slots, const uint32_t * order,
    long n)
{
  GcsAccessFn cb = callback_ptr;
  double t0 = now_ns ();
  for (long i = 0; i < n; i++) {
    uint64_t *word = (uint64_t *) (entries + (size_t) slots[order[i]] * stride);
    __atomic_fetch_add (word, 1, __ATOMIC_ACQUIRE);
    cb (word, NULL);
    __atomic_fetch_sub (word, 1, __ATOMIC_RELEASE);
  }
  return (now_ns () - t0) / n;
}

/* Memory as a big table would get it: 2 MiB aligned, transparent huge pages
 * asked for (as the library does for its own pages). */
static void *
huge_alloc (size_t size)
{
  size_t huge = (size_t) 2 << 20;
  void *p = aligned_alloc (huge, (size + huge - 1) / huge * huge);
  if (p == NULL) {
    perror ("aligned_alloc");
    exit (1);
  }
  madvise (p, size, MADV_HUGEPAGE);
  memset (p, 0, size);
  return p;
}

static long
rss_bytes (void)
{
  long pages = 0, resident = 0;
  FILE *f = fopen ("/proc/self/statm", "r");
  if (f == NULL || fscanf (f, "%ld %ld", &pages, &resident) != 2)
    resident = 0;
  if (f != NULL)
    fclose (f);
  return resident * sysconf (_SC_PAGESIZE);
}

/* ---- register + unregister ---------------------------------------------- */

typedef struct
{
  long iterations;
  double ns_per_pair;
  double on_cpu;
  pthread_barrier_t *start;
} RegisterJob;

static void *
register_thread (void *data)
{
  RegisterJob *job = data;
  char object[8];
  pthread_barrier_wait (job->start);
  double cpu0 = thread_cpu_ns ();
  double t0 = now_ns ();
  for (long i = 0; i < job->iterations; i++)
    gcs_unregister (register_pointer (object));
  double wall = now_ns () - t0;
  job->on_cpu = (thread_cpu_ns () - cpu0) / wall;
  job->ns_per_pair = wall / job->iterations;
  return NULL;
}

static double
register_sample (int threads, long iterations, double *on_cpu)
{
  RegisterJob jobs[2];
  pthread_t ids[2];
  pthread_barrier_t start;
  pthread_barrier_init (&start, NULL, threads);
  for (int t = 0; t < threads; t++) {
    jobs[t].iterations = iterations;
    jobs[t].start = &start;
    pthread_create (&ids[t], NULL, register_thread, &jobs[t]);
  }
  double sum = 0, cpu = 0;
  for (int t = 0; t < threads; t++) {
    pthread_join (ids[t], NULL);
    sum += jobs[t].ns_per_pair;
    cpu += jobs[t].on_cpu;
  }
  *on_cpu = cpu / threads;
  pthread_barrier_destroy (&start);
  return sum / threads;
}

/* ---- output ------------------------------------------------------------- */

#define TARGET_MAX 16

/* A target: a ratio of medians of this run, against its limit. */
typedef struct
{
  const char *key;
  const char *what;
  double ratio;
  double limit;
} Target;

static Target targets[TARGET_MAX];
static int target_count;

static void
target (const char *key, const char *what, double ratio, double limit)
{
  if (target_count < TARGET_MAX)
    targets[target_count++] = (Target) { key, what, ratio, limit };
  printf ("| %s | %.2f× | ≤ %.2f× | %s |\n", what, ratio, limit, ratio <= limit ? "PASS" : "MISS");
}

/* `text` as a JSON string. */
static void
json_string (FILE * f, const char *text)
{
  fputc ('"', f);
  for (const char *c = text; *c != '\0'; c++) {
    if (*c == '"' || *c == '\\')
      fprintf (f, "\\%c", *c);
    else if ((unsigned char) *c < 0x20)
      fprintf (f, "\\u%04x", (unsigned) (unsigned char) *c);
    else
      fputc (*c, f);
  }
  fputc ('"', f);
}

/* The load average when the run started, as /proc/loadavg has it. */
static void
read_loadavg (char *out, size_t size)
{
  FILE *f = fopen ("/proc/loadavg", "r");
  out[0] = '\0';
  if (f != NULL) {
    if (fgets (out, (int) size, f) == NULL)
      out[0] = '\0';
    fclose (f);
  }
  out[strcspn (out, "\n")] = '\0';
}

int
main (int argc, char **argv)
{
  const char *json_path = NULL;
  for (int a = 1; a < argc; a++) {
    if (strcmp (argv[a], "--json") == 0 && a + 1 < argc)
      json_path = argv[++a];
    else if (atoi (argv[a]) > 0)
      repeats = atoi (argv[a]);
    else {
      fprintf (stderr, "usage: %s [REPEATS] [--json FILE]\n", argv[0]);
      return 2;
    }
  }
  if (repeats > 64)
    repeats = 64;
  char loadavg[128];
  read_loadavg (loadavg, sizeof loadavg);
  const long iterations = 2000000;
  double samples[MODE_COUNT][OP_COUNT][64];
  double medians[MODE_COUNT][OP_COUNT];
  /* How much of its wall time each thread was on a CPU: on a machine busy
   * with other work, 2 threads may take turns rather than run at once, and
   * then their figures measure the machine's load, not contention. */
  double on_cpu[MODE_COUNT][OP_COUNT * 64];
  double on_cpu_median[MODE_COUNT];

  /* Warm up: the view, the default manager, the threads' blocks. */
  access_sample (OP_INLINE_SAFE, MODE_DISTINCT, 100000, &on_cpu[0][0]);
  access_sample (OP_INLINE_SAFE, MODE_SHARED, 100000, &on_cpu[0][0]);

  /* Every design in every mode once per repeat, interleaved, so that a
   * change in the machine's load hits all of them alike. */
  for (int r = 0; r < repeats; r++)
    for (int mode = 0; mode < MODE_COUNT; mode++)
      for (int op = 0; op < OP_COUNT; op++)
        samples[mode][op][r] = access_sample (op, mode, iterations, &on_cpu[mode][r * OP_COUNT + op]);
  for (int mode = 0; mode < MODE_COUNT; mode++) {
    for (int op = 0; op < OP_COUNT; op++)
      medians[mode][op] = median (samples[mode][op], repeats);
    on_cpu_median[mode] = median (on_cpu[mode], repeats * OP_COUNT);
  }

  printf ("### Access, C (median of %d runs of %ld accesses per thread; ns per access, per thread)\n\n",
      repeats, iterations);
  printf ("| design |");
  for (int mode = 0; mode < MODE_COUNT; mode++)
    printf (" %s | ÷ floor |", mode_names[mode]);
  printf ("\n|---|---|---|---|---|---|---|\n");
  for (int op = 0; op < OP_COUNT; op++) {
    printf ("| %s |", op_names[op]);
    for (int mode = 0; mode < MODE_COUNT; mode++)
      printf (" %.1f | %.2f× |", medians[mode][op], medians[mode][op] / medians[mode][OP_FLOOR]);
    printf ("\n");
  }
  printf ("\nShare of its wall time a thread was on a CPU (median of the runs above; "
      "below 100%%, other processes had the CPU):");
  for (int mode = 0; mode < MODE_COUNT; mode++)
    printf ("%s %s: %.0f%%", mode ? ";" : "", mode_names[mode], 100 * on_cpu_median[mode]);
  printf (".\n");
  /* Random handles among 1k, then 1M live ones; the baseline is the floor
   * on a random entry of a plain array of 16- and 32-byte entries. */
  const long random_n = 2000000;
  uint32_t *order = malloc (random_n * sizeof *order);
  double random_ns[2][4];       /* [1k, 1M][exported, inline, floor 16 B, floor 32 B] */
  double rss_per_handle = 0;
  for (int big = 0; big < 2; big++) {
    long live = big ? 1000000 : 1000;
    GcsHandle *handles = huge_alloc (live * sizeof *handles);
    uint32_t *slots = huge_alloc (live * sizeof *slots);
    char *entries16 = huge_alloc (live * 16), *entries32 = huge_alloc (live * 32);
    long before = rss_bytes ();
    for (long i = 0; i < live; i++) {
      handles[i] = register_pointer ((void *) (uintptr_t) (64 + 8 * i));
      slots[i] = (uint32_t) i;
    }
    if (big)
      rss_per_handle = (double) (rss_bytes () - before) / live;
    srand (42);
    for (long i = 0; i < random_n; i++)
      order[i] = (uint32_t) (((uint64_t) rand () * RAND_MAX + rand ()) % live);
    double s[4][64];
    for (int r = 0; r < repeats; r++) {
      for (int use_inline = 0; use_inline < 2; use_inline++)
        s[use_inline][r] = random_access_sample (handles, order, random_n, use_inline);
      s[2][r] = random_floor_sample (entries16, 16, slots, order, random_n);
      s[3][r] = random_floor_sample (entries32, 32, slots, order, random_n);
    }
    for (int k = 0; k < 4; k++)
      random_ns[big][k] = median (s[k], repeats);
    for (long i = 0; i < live; i++)
      gcs_unregister (handles[i]);
    free (handles);
    free (slots);
    free (entries16);
    free (entries32);
  }
  free (order);
  printf ("\n### Random handles (median of %d runs of %ld accesses; ns per access)\n\n", repeats,
      random_n);
  printf ("| live handles | `gcs_safe_access` | `gcs_safe_access_inline` | floor, 16-byte entries | floor, 32-byte entries |\n|---|---|---|---|---|\n");
  for (int big = 0; big < 2; big++)
    printf ("| %s | %.1f | %.1f | %.1f | %.1f |\n", big ? "1M" : "1k", random_ns[big][0],
        random_ns[big][1], random_ns[big][2], random_ns[big][3]);
  printf ("\nMemory per live handle (RSS growth ÷ 1M POINTER registrations): %.0f bytes\n",
      rss_per_handle);

  const long pairs = 500000;
  double reg[2][64], reg_cpu[2][64];
  for (int r = 0; r < repeats; r++)
    for (int threads = 1; threads <= 2; threads++)
      reg[threads - 1][r] = register_sample (threads, pairs, &reg_cpu[threads - 1][r]);
  double reg1 = median (reg[0], repeats), reg2 = median (reg[1], repeats);
  double reg_cpu1 = median (reg_cpu[0], repeats), reg_cpu2 = median (reg_cpu[1], repeats);
  printf ("\n### Register + unregister, POINTER (median of %d runs of %ld pairs per thread)\n\n",
      repeats, pairs);
  printf ("| threads | ns per pair | share of wall time on a CPU |\n|---|---|---|\n"
      "| 1 | %.1f | %.0f%% |\n| 2, own objects | %.1f | %.0f%% |\n", reg1, 100 * reg_cpu1, reg2,
      100 * reg_cpu2);

  printf ("\n### Targets (ratios of medians of this run)\n\n| measure | measured | target | |\n|---|---|---|---|\n");
  target ("safe_access_inline_1_thread", "`gcs_safe_access_inline` ÷ floor, 1 thread",
      medians[MODE_ONE_THREAD][OP_INLINE_SAFE] / medians[MODE_ONE_THREAD][OP_FLOOR], 1.15);
  target ("safe_access_inline_2_threads_distinct",
      "`gcs_safe_access_inline` ÷ floor, 2 threads, distinct handles",
      medians[MODE_DISTINCT][OP_INLINE_SAFE] / medians[MODE_DISTINCT][OP_FLOOR], 1.15);
  target ("safe_access_1_thread", "exported `gcs_safe_access` ÷ floor, 1 thread",
      medians[MODE_ONE_THREAD][OP_EXPORTED_SAFE] / medians[MODE_ONE_THREAD][OP_FLOOR], 1.5);
  target ("random_1m_over_1k_safe_access", "random access, 1M ÷ 1k live handles (`gcs_safe_access`)",
      random_ns[1][0] / random_ns[0][0], 2.0);
  target ("random_1m_over_1k_inline", "random access, 1M ÷ 1k live handles (inline)",
      random_ns[1][1] / random_ns[0][1], 2.0);
  printf ("| (baseline: the floor on a plain array, 1M ÷ 1k, 16 / 32-byte entries) | %.2f× / %.2f× | | |\n",
      random_ns[1][2] / random_ns[0][2], random_ns[1][3] / random_ns[0][3]);
  target ("register_2_threads_over_1", "register+unregister, 2 threads ÷ 1 thread", reg2 / reg1, 1.3);
  printf ("| memory per live handle | %.0f bytes | ≤ 64 bytes | %s |\n", rss_per_handle,
      rss_per_handle <= 64 ? "PASS" : "MISS");

  if (json_path != NULL) {
    FILE *f = fopen (json_path, "w");
    if (f == NULL) {
      perror (json_path);
      return 1;
    }
    fprintf (f, "{\n  \"benchmark\": \"table_bench\",\n  \"unit\": \"ns\",\n");
    fprintf (f, "  \"statistic\": \"median of repeats\",\n  \"repeats\": %d,\n", repeats);
    fprintf (f, "  \"loadavg_at_start\": ");
    json_string (f, loadavg);
    fprintf (f, ",\n  \"access\": {\n    \"what\": \"ns per access, per thread\",\n");
    fprintf (f, "    \"iterations_per_thread\": %ld,\n    \"modes\": {", iterations);
    for (int mode = 0; mode < MODE_COUNT; mode++) {
      fprintf (f, "%s\"%s\": ", mode ? ", " : "", mode_keys[mode]);
      json_string (f, mode_names[mode]);
    }
    fprintf (f, "},\n    \"on_cpu_share\": {");
    for (int mode = 0; mode < MODE_COUNT; mode++)
      fprintf (f, "%s\"%s\": %.3f", mode ? ", " : "", mode_keys[mode], on_cpu_median[mode]);
    fprintf (f, "},\n    \"designs\": {\n");
    for (int op = 0; op < OP_COUNT; op++) {
      fprintf (f, "      \"%s\": {\"label\": ", op_keys[op]);
      json_string (f, op_names[op]);
      for (int mode = 0; mode < MODE_COUNT; mode++)
        fprintf (f, ", \"%s\": %.3f", mode_keys[mode], medians[mode][op]);
      /* Every run's figure, in ascending order (median sorted them). */
      fprintf (f, ",\n        \"samples\": {");
      for (int mode = 0; mode < MODE_COUNT; mode++) {
        fprintf (f, "%s\"%s\": [", mode ? ", " : "", mode_keys[mode]);
        for (int r = 0; r < repeats; r++)
          fprintf (f, "%s%.2f", r ? ", " : "", samples[mode][op][r]);
        fprintf (f, "]");
      }
      fprintf (f, "}}%s\n", op + 1 < OP_COUNT ? "," : "");
    }
    fprintf (f, "    }\n  },\n  \"random_access\": {\n");
    fprintf (f, "    \"what\": \"ns per access of a random handle among the live ones\",\n");
    fprintf (f, "    \"accesses\": %ld,\n", random_n);
    for (int big = 0; big < 2; big++)
      fprintf (f, "    \"%s\": {\"live_handles\": %ld, \"safe_access\": %.3f, "
          "\"safe_access_inline\": %.3f, \"floor_16_byte_entries\": %.3f, "
          "\"floor_32_byte_entries\": %.3f}%s\n", big ? "1M" : "1k", big ? 1000000L : 1000L,
          random_ns[big][0], random_ns[big][1], random_ns[big][2], random_ns[big][3],
          big ? "" : ",");
    fprintf (f, "  },\n  \"memory\": {\"bytes_per_live_handle\": %.1f, \"live_handles\": 1000000},\n",
        rss_per_handle);
    fprintf (f, "  \"register_unregister\": {\"what\": \"ns per POINTER register + unregister pair, per thread\", "
        "\"pairs_per_thread\": %ld, \"1_thread\": %.3f, \"2_threads_own_objects\": %.3f, "
        "\"on_cpu_share\": {\"1_thread\": %.3f, \"2_threads_own_objects\": %.3f}},\n", pairs, reg1,
        reg2, reg_cpu1, reg_cpu2);
    fprintf (f, "  \"targets\": [\n");
    for (int t = 0; t < target_count; t++) {
      fprintf (f, "    {\"key\": \"%s\", \"measure\": ", targets[t].key);
      json_string (f, targets[t].what);
      fprintf (f, ", \"measured\": %.4f, \"limit\": %.2f, \"pass\": %s},\n", targets[t].ratio,
          targets[t].limit, targets[t].ratio <= targets[t].limit ? "true" : "false");
    }
    fprintf (f, "    {\"key\": \"memory_per_live_handle\", \"measure\": \"memory per live handle (bytes)\", "
        "\"measured\": %.1f, \"limit\": 64, \"pass\": %s}\n  ]\n}\n", rss_per_handle,
        rss_per_handle <= 64 ? "true" : "false");
    if (fclose (f) != 0) {
      perror (json_path);
      return 1;
    }
  }
  gcs_shutdown (1000);
  return 0;
}

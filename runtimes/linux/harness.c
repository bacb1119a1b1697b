/*
 * edgekit_harness: runs an edgekit model shared library on a board without Python.
 *
 *   edgekit_harness --info
 *   edgekit_harness IN OUT [REPEAT]
 *
 * IN holds N inputs back to back (raw bytes of the input tensor, N = size of IN /
 * input bytes); OUT receives the N outputs the same way. With REPEAT > 1 the N inputs
 * run REPEAT times (the outputs of the last pass are written). Prints one line:
 * `inferences K us_per_inference MEAN p50 MEDIAN min MIN max MAX` (CLOCK_MONOTONIC around
 * each call, one thread; the median resists other load on the machine).
 * Exit status: 0 ok, 1 a failed inference or write, 2 bad arguments or input file.
 */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "edgekit_model_abi.h"

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int compare_doubles(const void *a, const void *b) {
  const double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : (x > y ? 1 : 0);
}

static const char *dtype_name(uint32_t dtype) {
  return dtype == EK_DTYPE_FLOAT32 ? "float32" : (dtype == EK_DTYPE_INT32 ? "int32" : "int8");
}

static void print_tensor(const char *role, const ek_tensor_info *t) {
  uint32_t i;
  printf("%s %s [", role, dtype_name(t->dtype));
  for (i = 0; i < t->rank; i++) {
    printf(i ? ",%ld" : "%ld", (long)t->shape[i]);
  }
  printf("] bytes %lu", (unsigned long)t->bytes);
  if (t->quantized) {
    printf(" scale %.9g zero_point %ld", (double)t->scale, (long)t->zero_point);
  }
  printf("\n");
}

/* The whole file; *size receives its length. NULL (with a message) on failure. */
static unsigned char *read_file(const char *path, long *size) {
  FILE *f = fopen(path, "rb");
  unsigned char *buf;
  if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (*size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
    fprintf(stderr, "edgekit_harness: cannot read %s\n", path);
    if (f != NULL) {
      fclose(f);
    }
    return NULL;
  }
  buf = (unsigned char *)malloc(*size > 0 ? (size_t)*size : 1u);
  if (buf == NULL || fread(buf, 1, (size_t)*size, f) != (size_t)*size) {
    fprintf(stderr, "edgekit_harness: cannot read %ld bytes from %s\n", *size, path);
    fclose(f);
    free(buf);
    return NULL;
  }
  fclose(f);
  return buf;
}

int main(int argc, char **argv) {
  const ek_model_info *info = ek_model_info_get();
  unsigned char *in, *out;
  double *times;
  long size, n, repeat = 1, r, i;
  double total = 0.0;
  FILE *f;

  if (info->abi_version != EK_MODEL_ABI_VERSION) {
    fprintf(stderr, "edgekit_harness: the library has ABI %lu, this harness %lu\n",
            (unsigned long)info->abi_version, (unsigned long)EK_MODEL_ABI_VERSION);
    return 2;
  }
  if (argc == 2 && strcmp(argv[1], "--info") == 0) {
    printf("model %s\narena_bytes %lu\n", info->name, (unsigned long)info->arena_bytes);
    print_tensor("input", &info->input);
    print_tensor("output", &info->output);
    return 0;
  }
  if (argc != 3 && argc != 4) {
    fprintf(stderr, "usage: %s --info | IN OUT [REPEAT]\n", argv[0]);
    return 2;
  }
  if (argc == 4 && (repeat = atol(argv[3])) < 1) {
    fprintf(stderr, "edgekit_harness: REPEAT must be a positive integer, got %s\n", argv[3]);
    return 2;
  }
  in = read_file(argv[1], &size);
  if (in == NULL) {
    return 2;
  }
  if (size == 0 || size % (long)info->input.bytes != 0) {
    fprintf(stderr, "edgekit_harness: %s holds %ld bytes, not a whole number of %lu-byte inputs\n",
            argv[1], size, (unsigned long)info->input.bytes);
    free(in);
    return 2;
  }
  n = size / (long)info->input.bytes;
  out = (unsigned char *)malloc((size_t)n * info->output.bytes);
  times = (double *)malloc((size_t)(n * repeat) * sizeof(double));
  if (out == NULL || times == NULL) {
    fprintf(stderr, "edgekit_harness: out of memory\n");
    free(in);
    return 1;
  }
  for (r = 0; r < repeat; r++) {
    for (i = 0; i < n; i++) {
      const double t0 = now_us();
      const int rc = ek_model_run(in + i * (long)info->input.bytes, info->input.bytes,
                                  out + i * (long)info->output.bytes, info->output.bytes);
      const double dt = now_us() - t0;
      if (rc != EK_OK) {
        fprintf(stderr, "edgekit_harness: inference %ld failed (%d)\n", i, rc);
        return 1;
      }
      total += dt;
      times[r * n + i] = dt;
    }
  }
  f = fopen(argv[2], "wb");
  if (f == NULL || fwrite(out, info->output.bytes, (size_t)n, f) != (size_t)n || fclose(f) != 0) {
    fprintf(stderr, "edgekit_harness: cannot write %s\n", argv[2]);
    return 1;
  }
  qsort(times, (size_t)(n * repeat), sizeof(double), compare_doubles);
  printf("inferences %ld us_per_inference %.3f p50 %.3f min %.3f max %.3f\n", n * repeat,
         total / (double)(n * repeat), times[(n * repeat) / 2], times[0], times[n * repeat - 1]);
  free(in);
  free(out);
  free(times);
  return 0;
}

/*
 * Host test runner of a generated model: `runner IN OUT N` reads N inputs
 * (EDGEKIT_MODEL_INPUT_BYTES bytes each) from the file IN, runs edgekit_model_invoke
 * on each, and writes the N outputs to the file OUT. `runner --time N REPEAT IN` runs
 * the N inputs of IN REPEAT times (after one warm-up pass) and prints the mean
 * microseconds per inference (CLOCK_MONOTONIC, one thread).
 */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model.h"

static unsigned char *read_all(const char *path, size_t want) {
  FILE *f = fopen(path, "rb");
  unsigned char *buf = (unsigned char *)malloc(want ? want : 1u);
  if (f == NULL || buf == NULL || fread(buf, 1, want, f) != want) {
    fprintf(stderr, "cannot read %lu bytes from %s\n", (unsigned long)want, path);
    exit(2);
  }
  fclose(f);
  return buf;
}

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

int main(int argc, char **argv) {
  static edgekit_output_t out[EDGEKIT_MODEL_OUTPUT_SIZE];
  if (argc == 5 && strcmp(argv[1], "--time") == 0) {
    const long n = atol(argv[2]), repeat = atol(argv[3]);
    unsigned char *in = read_all(argv[4], (size_t)n * EDGEKIT_MODEL_INPUT_BYTES);
    long r, i;
    double t0, t1;
    for (i = 0; i < n; i++) { /* warm up */
      edgekit_model_invoke((const edgekit_input_t *)(void *)(in + i * EDGEKIT_MODEL_INPUT_BYTES), out);
    }
    t0 = now_us();
    for (r = 0; r < repeat; r++) {
      for (i = 0; i < n; i++) {
        edgekit_model_invoke((const edgekit_input_t *)(void *)(in + i * EDGEKIT_MODEL_INPUT_BYTES),
                             out);
      }
    }
    t1 = now_us();
    printf("us_per_inference %.3f\n", (t1 - t0) / (double)(n * repeat));
    free(in);
    return 0;
  }
  if (argc == 4) {
    const long n = atol(argv[3]);
    unsigned char *in = read_all(argv[1], (size_t)n * EDGEKIT_MODEL_INPUT_BYTES);
    FILE *f = fopen(argv[2], "wb");
    long i;
    if (f == NULL) {
      fprintf(stderr, "cannot write %s\n", argv[2]);
      return 2;
    }
    for (i = 0; i < n; i++) {
      if (edgekit_model_invoke((const edgekit_input_t *)(void *)(in + i * EDGEKIT_MODEL_INPUT_BYTES),
                               out) != 0) {
        fprintf(stderr, "invoke %ld failed\n", i);
        return 1;
      }
      fwrite(out, 1, EDGEKIT_MODEL_OUTPUT_BYTES, f);
    }
    fclose(f);
    free(in);
    return 0;
  }
  fprintf(stderr, "usage: %s IN OUT N | --time N REPEAT IN\n", argv[0]);
  return 2;
}

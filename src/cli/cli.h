/* The dizuo command-line program: one function per subcommand, each in its
 * own file (cmd_<name>.c). Exit codes: 0 ok, 1 error (message on stderr
 * naming what is wrong), 2 usage. */
#ifndef DZ_CLI_H
#define DZ_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { DZ_EXIT_OK = 0, DZ_EXIT_ERROR = 1, DZ_EXIT_USAGE = 2 };

int dz_cmd_info(int argc, char **argv);
int dz_cmd_tokenize(int argc, char **argv);
int dz_cmd_tokenizer_train(int argc, char **argv);
int dz_cmd_run(int argc, char **argv);
int dz_cmd_logits(int argc, char **argv);
int dz_cmd_conformance(int argc, char **argv);
int dz_cmd_devices(int argc, char **argv);
int dz_cmd_synth(int argc, char **argv);
int dz_cmd_quantize(int argc, char **argv);
int dz_cmd_bench(int argc, char **argv);
int dz_cmd_keys(int argc, char **argv);
int dz_cmd_usage(int argc, char **argv);
int dz_cmd_serve(int argc, char **argv);
int dz_cmd_train(int argc, char **argv);
int dz_cmd_finetune(int argc, char **argv);
int dz_cmd_lora_merge(int argc, char **argv);

/* Argument helpers: print "dizuo <cmd>: <what> ..." on stderr and return false
 * on a malformed or out-of-range value. */
bool dz_arg_int(const char *cmd, const char *opt, const char *text, long long lo, long long hi,
                long long *out);
bool dz_arg_float(const char *cmd, const char *opt, const char *text, double lo, double hi,
                  double *out);
/* The value after option argv[*i]; advances *i. NULL (and a message) if missing. */
const char *dz_arg_value(const char *cmd, int argc, char **argv, int *i);
/* The value after option argv[*i] with C escapes decoded (\n, \t, \r, \\),
 * copied into buf (cap bytes with its NUL); advances *i. NULL (and a
 * message) if missing, empty, too long or with another escape. */
const char *dz_arg_escaped(const char *cmd, int argc, char **argv, int *i, char *buf, size_t cap);
/* Option tables of the subcommands with many options. Each call looks at
 * argv[*i]: 1 it is one of the table's options and its value was taken (*i
 * advanced, *given set when not NULL), 0 it is not one of them, -1 a
 * missing or bad value (message printed). */
typedef struct dz_opt_int {
    const char *name;
    long long *dst, lo, hi;
    bool *given;
} dz_opt_int;
typedef struct dz_opt_str {
    const char *name;
    const char **dst;
} dz_opt_str;
int dz_arg_ints(const char *cmd, int argc, char **argv, int *i, const dz_opt_int *opts, size_t n);
int dz_arg_strs(const char *cmd, int argc, char **argv, int *i, const dz_opt_str *opts, size_t n);
/* Checks a --device name: an unknown device prints the usage error listing
 * the devices there are and returns false. */
bool dz_arg_device(const char *cmd, const char *name);
/* Prints the library's last error as "dizuo <cmd>: <message>" and returns 1. */
int dz_cli_error(const char *cmd);

#endif

/* PLACEHOLDER: replaced by the real subcommand. */
#include <stdio.h>
#include "cli/cli.h"
int dz_cmd_quantize(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "dizuo quantize: not built yet\n"); return DZ_EXIT_ERROR; }

/* dizuo: one program for the whole life of a model. Dispatches subcommands. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

typedef struct command {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    {"info", dz_cmd_info, "architecture, hyper-parameters, tokenizer and tensors of a GGUF model"},
    {"tokenize", dz_cmd_tokenize, "print the token ids of a text"},
    {"tokenizer-train", dz_cmd_tokenizer_train, "learn a byte-level BPE vocabulary from text files"},
    {"run", dz_cmd_run, "generate text from a prompt"},
    {"logits", dz_cmd_logits, "teacher-forced logits of a token sequence"},
    {"devices", dz_cmd_devices, "list the devices (CPU, accelerators, plugins) dizuo can run on"},
    {"conformance", dz_cmd_conformance, "check a device's kernels against the CPU reference"},
    {"synth", dz_cmd_synth, "write a random-weight model of any shape (for benchmarks)"},
    {"quantize", dz_cmd_quantize, "convert a model's weights to another format"},
    {"bench", dz_cmd_bench, "prompt-processing and generation speed; memory bandwidth"},
    {"keys", dz_cmd_keys, "create, list and revoke API keys"},
    {"usage", dz_cmd_usage, "token usage per tenant from the ledger"},
    {"serve", dz_cmd_serve, "the OpenAI-compatible model service with keys, quotas and a usage ledger"},
    {"train", dz_cmd_train, "pretrain or continue training a llama or gpt2 model"},
    {"finetune", dz_cmd_finetune, "train a LoRA adapter on a frozen (possibly quantized) base model"},
    {"lora-merge", dz_cmd_lora_merge, "fold a LoRA adapter into its base model"},
};
enum { N_COMMANDS = sizeof commands / sizeof commands[0] };

static void usage(FILE *out) {
    fprintf(out, "usage: dizuo <command> [options]   (dizuo <command> --help for details)\n\n"
                 "commands:\n");
    for (int i = 0; i < N_COMMANDS; i++)
        fprintf(out, "  %-16s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return DZ_EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return DZ_EXIT_OK;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("dizuo 0.1.0\n");
        return DZ_EXIT_OK;
    }
    for (int i = 0; i < N_COMMANDS; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "dizuo: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return DZ_EXIT_USAGE;
}

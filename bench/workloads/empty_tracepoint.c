/* The floor of syscall tracing on this kernel: an empty BPF program on one
 * per-syscall tracepoint (argument: CATEGORY/NAME, default
 * syscalls/sys_exit_socket). Enabling any syscall tracepoint sends every
 * task's system calls through the kernel's slow path; only the named call
 * runs the program. Prints `attached` and holds it until stdin closes. */
#include <linux/bpf.h>
#include <linux/perf_event.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

static long bpf(int cmd, union bpf_attr *a) { return syscall(SYS_bpf, cmd, a, sizeof *a); }

int main(int argc, char **argv) {
    const char *tp = argc > 1 ? argv[1] : "syscalls/sys_exit_socket";
    struct bpf_insn prog[] = {
        {.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = 0, .imm = 0},
        {.code = BPF_JMP | BPF_EXIT},
    };
    union bpf_attr a;
    memset(&a, 0, sizeof a);
    a.prog_type = BPF_PROG_TYPE_TRACEPOINT;
    a.insns = (uint64_t)(uintptr_t)prog;
    a.insn_cnt = 2;
    a.license = (uint64_t)(uintptr_t)"GPL";
    int pfd = bpf(BPF_PROG_LOAD, &a);
    char path[256];
    snprintf(path, sizeof path, "/sys/kernel/tracing/events/%s/id", tp);
    FILE *f = fopen(path, "r");
    int id = -1;
    if (pfd < 0 || !f || fscanf(f, "%d", &id) != 1) {
        perror("loading the empty program or reading the tracepoint id");
        return 2;
    }
    struct perf_event_attr pa;
    memset(&pa, 0, sizeof pa);
    pa.type = PERF_TYPE_TRACEPOINT;
    pa.size = sizeof pa;
    pa.config = (uint64_t)id;
    int ev = (int)syscall(SYS_perf_event_open, &pa, -1, 0, -1, PERF_FLAG_FD_CLOEXEC);
    if (ev < 0 || ioctl(ev, PERF_EVENT_IOC_SET_BPF, pfd) < 0 || ioctl(ev, PERF_EVENT_IOC_ENABLE, 0) < 0) {
        perror("attaching");
        return 2;
    }
    printf("attached %s\n", tp);
    fflush(stdout);
    char c;
    while (read(0, &c, 1) > 0) {
    }
    return 0;
}

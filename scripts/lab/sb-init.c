/* The whole userland of the lab's Secure Boot initrd (scripts/lab.sh, uefi-secureboot): the
 * signed kernel that shim and GRUB let through runs this as /init. It prints the lab marker
 * with what the generated grub.cfg put on the kernel command line (bootpolicy.mac=), whether
 * the firmware says Secure Boot is on (the SecureBoot EFI variable) and the kernel's lockdown
 * mode, then powers the VM off. Built static (cc -static) so the initrd needs nothing else.
 * The marker is built in (-DMARKER=...), not read from the command line: the kernel prints its
 * command line early, and the lab must not take that for the marker. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef MARKER
#define MARKER "BOOTPOLICY-LAB-REACHED"
#endif

static void slurp(const char *path, char *out, size_t size) {
    out[0] = '\0';
    int fd = open(path, O_RDONLY);
    if (fd < 0) return;
    ssize_t n = read(fd, out, size - 1);
    close(fd);
    if (n < 0) n = 0;
    out[n] = '\0';
    char *nl = strchr(out, '\n');
    if (nl) *nl = '\0';
}

/* The value of `key=` among the command line's words, or fallback. */
static const char *arg(const char *cmdline, const char *key, char *out, size_t size, const char *fallback) {
    size_t klen = strlen(key);
    for (const char *p = cmdline; *p;) {
        while (*p == ' ') p++;
        const char *end = strchr(p, ' ');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len > klen && strncmp(p, key, klen) == 0 && p[klen] == '=') {
            size_t vlen = len - klen - 1;
            if (vlen >= size) vlen = size - 1;
            memcpy(out, p + klen + 1, vlen);
            out[vlen] = '\0';
            return out;
        }
        p += len;
    }
    return fallback;
}

int main(void) {
    mkdir("/proc", 0555);
    mkdir("/sys", 0555);
    mount("proc", "/proc", "proc", 0, NULL);
    mount("sysfs", "/sys", "sysfs", 0, NULL);
    mount("securityfs", "/sys/kernel/security", "securityfs", 0, NULL);
    mount("efivarfs", "/sys/firmware/efi/efivars", "efivarfs", MS_RDONLY, NULL);

    char cmdline[4096], mac[64], lockdown[128], release[128];
    slurp("/proc/cmdline", cmdline, sizeof cmdline);
    slurp("/proc/sys/kernel/osrelease", release, sizeof release);
    slurp("/sys/kernel/security/lockdown", lockdown, sizeof lockdown);
    /* "none [integrity] confidentiality": the bracketed word is the mode in force. */
    char *open_b = strchr(lockdown, '['), *close_b = open_b ? strchr(open_b, ']') : NULL;
    if (open_b && close_b) {
        *close_b = '\0';
        memmove(lockdown, open_b + 1, strlen(open_b + 1) + 1);
    }

    /* SecureBoot-8be4df61-...: 4 bytes of attributes, then one byte, 1 when it is on. Debian
     * builds efivarfs as a module, which this initrd does not load: then the field is left out
     * and the kernel's own "Secure boot enabled" line and its lockdown mode are the evidence. */
    const char *secureboot = NULL;
    unsigned char var[8];
    int fd = open("/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c", O_RDONLY);
    if (fd >= 0) {
        if (read(fd, var, sizeof var) >= 5) secureboot = var[4] == 1 ? "on" : "off";
        close(fd);
    } else if (access("/sys/firmware/efi", F_OK) != 0) {
        secureboot = "no-efi";
    }

    printf("\n%s %s kernel=%s%s%s lockdown=%s\n",
           MARKER,
           arg(cmdline, "bootpolicy.mac", mac, sizeof mac, "no-mac"), release,
           secureboot ? " secureboot=" : "", secureboot ? secureboot : "",
           lockdown[0] ? lockdown : "unknown");
    printf("cmdline: %s\n", cmdline);
    fflush(stdout);
    sync();
    sleep(2);
    reboot(RB_POWER_OFF);
    for (;;) pause();
}

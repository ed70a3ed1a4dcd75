/*
 * qmail-sim: bin/qmail-queue of a split home.
 *
 * `qmail-sim setup` compiles this file when it makes a split home and
 * installs the result as bin/qmail-queue, owned by qmailq, mode 04711, as
 * netqmail's hier.c installs its qmail-queue. A script cannot be setuid, so
 * this is the one step that gains qmailq's rights; everything else is
 * qmail-sim's qmail-queue (server.queue.program), run by the interpreter that
 * ran setup. Three absolute paths are compiled in, as qmail compiles in
 * auto_qmail:
 *
 *   QS_PYTHON  the interpreter
 *   QS_LIB     the directory that holds qmail-sim's `server` package
 *   QS_HOME    the qmail home
 *
 * Nothing the caller controls reaches the interpreter except descriptors 0
 * and 1 (the message and the envelope) and the real uid, which qmail-queue
 * reads for its Received line and the u record:
 *
 *   - arguments are ignored;
 *   - the environment is replaced by PATH=/usr/bin:/bin, plus the caller's TZ
 *     when it is a plain zone name or POSIX TZ string (with the
 *     date-localtime patch the Received date is in TZ's zone, as libc's
 *     localtime() in a setuid qmail-queue would give it);
 *   - descriptor 2 becomes /dev/null and 3 and up are closed; blocked and
 *     ignored signals are reset;
 *   - the interpreter runs with -I (no PYTHON* variables, no user site
 *     directory, not the current directory on sys.path) and -S (no site
 *     module, so no .pth file runs), and finds only its standard library and
 *     QS_LIB.
 *
 * Exit codes are qmail-queue's: 61 when the home cannot be entered
 * (qmail-queue.c's chdir(auto_qmail)), 54 when descriptor 0 or 1 is closed
 * (its read would fail), and 111, a temporary failure, when the interpreter
 * cannot be run or our code cannot be imported. Nothing has been written to
 * the queue by then.
 */

#define _GNU_SOURCE /* syscall(), NSIG */
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/syscall.h>
#endif

#if !defined(QS_PYTHON) || !defined(QS_LIB) || !defined(QS_HOME)
#error "compile with -DQS_PYTHON=... -DQS_LIB=... -DQS_HOME=... (qmail-sim setup does)"
#endif

#ifndef NSIG
#define NSIG 65
#endif

#define EXIT_READ 54
#define EXIT_HOME 61
#define EXIT_TEMP 111

/* Run by the interpreter: import qmail-queue from QS_LIB (argv[1]) and run it
 * for the home (argv[2]); an import failure is a temporary failure. */
static const char boot[] =
    "import sys\n"
    "sys.path.append(sys.argv[1])\n"
    "try:\n"
    "    from server.queue.program import privileged_main\n"
    "except BaseException:\n"
    "    raise SystemExit(111)\n"
    "raise SystemExit(privileged_main(sys.argv[2]))\n";

#define TZ_MAX 64

/* A zone name (Europe/Berlin, :Europe/Berlin) or a POSIX TZ string
 * (EST5EDT,M3.2.0,M11.1.0 or <+0330>-3:30): no file path, nothing that
 * climbs out of the zoneinfo directory, nothing a shell or a parser could
 * take for more. */
static int tz_safe(const char *tz)
{
    size_t i;
    size_t n = strlen(tz);

    if (n == 0 || n > TZ_MAX) return 0;
    if (tz[0] == ':') ++tz;
    if (tz[0] == '\0' || tz[0] == '/') return 0;
    if (strstr(tz, "..")) return 0;
    for (i = 0; tz[i]; ++i) {
        char c = tz[i];
        if (c >= 'a' && c <= 'z') continue;
        if (c >= 'A' && c <= 'Z') continue;
        if (c >= '0' && c <= '9') continue;
        if (strchr("+-_,./:<>", c)) continue;
        return 0;
    }
    return 1;
}

static void close_from_3(void)
{
    long fd, max;

#if defined(__linux__) && defined(SYS_close_range)
    if (syscall(SYS_close_range, 3U, ~0U, 0U) == 0) return;
#endif
    max = sysconf(_SC_OPEN_MAX);
    if (max < 0) max = 1024;
    for (fd = 3; fd < max; ++fd) close((int) fd);
}

static void reset_signals(void)
{
    sigset_t none;
    int sig;

    for (sig = 1; sig < NSIG; ++sig) signal(sig, SIG_DFL); /* KILL, STOP: EINVAL */
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, 0);
}

int main(void)
{
    static char path_env[] = "PATH=/usr/bin:/bin";
    static char tz_env[3 + TZ_MAX + 1] = "TZ=";
    char *envp[3];
    char *argv[8];
    const char *tz;
    int n = 0;
    int null;

    /* A closed 0 or 1 would otherwise be filled by the next open. */
    if (fcntl(0, F_GETFD) == -1 || fcntl(1, F_GETFD) == -1) _exit(EXIT_READ);
    null = open("/dev/null", O_WRONLY);
    if (null == -1) _exit(EXIT_TEMP);
    if (null != 2) {
        if (dup2(null, 2) == -1) _exit(EXIT_TEMP);
        close(null);
    }
    close_from_3();
    reset_signals();
    if (chdir(QS_HOME) == -1) _exit(EXIT_HOME);

    envp[n++] = path_env;
    tz = getenv("TZ");
    if (tz && tz_safe(tz)) {
        strcpy(tz_env + 3, tz); /* tz_safe: at most TZ_MAX bytes */
        envp[n++] = tz_env;
    }
    envp[n] = 0;

    argv[0] = (char *) QS_PYTHON;
    argv[1] = (char *) "-I";
    argv[2] = (char *) "-S";
    argv[3] = (char *) "-c";
    argv[4] = (char *) boot;
    argv[5] = (char *) QS_LIB;
    argv[6] = (char *) QS_HOME;
    argv[7] = 0;
    execve(QS_PYTHON, argv, envp);
    _exit(EXIT_TEMP);
}

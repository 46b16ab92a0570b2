/* des: M/M/c queue simulation. Parameters come from the environment (DES_ARRIVAL_RATE, ...),
 * overridden by the command line (--arrival-rate 0.9, or --arrival-rate=0.9); see usage().
 * Prints progress lines ("... progress (40%)") and a summary, and writes <output>/summary.json
 * (default results/summary.json, relative to the current directory). A seed gives the same
 * results, to the last digit, on every run. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "sim.h"

static const char *prog = "des";

static void usage(FILE *f) {
    fprintf(f,
            "usage: %s [--arrival-rate R] [--service-rate R] [--servers N] [--customers N]\n"
            "          [--warmup N] [--seed N] [--output DIR]\n"
            "  --arrival-rate R  customers per unit time    DES_ARRIVAL_RATE  default 0.9\n"
            "  --service-rate R  per server, per unit time  DES_SERVICE_RATE  default 1\n"
            "  --servers N       number of servers c        DES_SERVERS       default 1\n"
            "  --customers N     customers measured         DES_CUSTOMERS     default 100000\n"
            "  --warmup N        served before measuring    DES_WARMUP        default customers/10\n"
            "  --seed N          random seed                DES_SEED          default 0\n"
            "  --output DIR      where summary.json goes    DES_OUTPUT        default results\n"
            "Options override the environment variables.\n",
            prog);
}

static void bad(const char *name, const char *value, const char *why) {
    fprintf(stderr, "%s: %s '%s': %s\n", prog, name, value, why);
    usage(stderr);
    exit(2);
}

static double parse_rate(const char *name, const char *v) {
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (end == v || *end || errno || !isfinite(x) || x <= 0.0)
        bad(name, v, "expected a positive number");
    return x;
}

static long parse_count(const char *name, const char *v, long min) {
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (end == v || *end || errno || x < min) {
        char why[64];
        snprintf(why, sizeof why, "expected an integer, at least %ld", min);
        bad(name, v, why);
    }
    return x;
}

static uint64_t parse_seed(const char *name, const char *v) {
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (end == v || *end || errno || v[strspn(v, " \t")] == '-')
        bad(name, v, "expected an integer, 0 or more");
    return (uint64_t)x;
}

typedef struct {
    const char *option, *env;
    const char *value; /* NULL: not given */
} setting_t;

enum { S_ARRIVAL, S_SERVICE, S_SERVERS, S_CUSTOMERS, S_WARMUP, S_SEED, S_OUTPUT, S_COUNT };

static setting_t settings[S_COUNT] = {
    {"--arrival-rate", "DES_ARRIVAL_RATE", NULL}, {"--service-rate", "DES_SERVICE_RATE", NULL},
    {"--servers", "DES_SERVERS", NULL},           {"--customers", "DES_CUSTOMERS", NULL},
    {"--warmup", "DES_WARMUP", NULL},             {"--seed", "DES_SEED", NULL},
    {"--output", "DES_OUTPUT", NULL},
};

static void read_settings(int argc, char **argv) {
    for (int i = 0; i < S_COUNT; i++) {
        const char *v = getenv(settings[i].env);
        if (v && *v) settings[i].value = v;
    }
    for (int a = 1; a < argc; a++) {
        const char *arg = argv[a];
        if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
            usage(stdout);
            exit(0);
        }
        int found = 0;
        for (int i = 0; i < S_COUNT && !found; i++) {
            size_t n = strlen(settings[i].option);
            if (strncmp(arg, settings[i].option, n)) continue;
            if (arg[n] == '=') {
                settings[i].value = arg + n + 1;
                found = 1;
            } else if (arg[n] == '\0') {
                if (a + 1 >= argc) bad(arg, "", "missing value");
                settings[i].value = argv[++a];
                found = 1;
            }
        }
        if (!found) bad("argument", arg, "unknown");
    }
}

/* mkdir -p */
static int make_dirs(const char *path) {
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) return -1;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0777) && errno != EEXIST) return -1;
        *p = '/';
    }
    return mkdir(buf, 0777) && errno != EEXIST ? -1 : 0;
}

/* "key": x, with the fewest digits that read back as exactly x (null when not finite) */
static void json_num(FILE *f, const char *key, double x, const char *after) {
    char buf[40];
    if (!isfinite(x)) {
        fprintf(f, "\"%s\": null%s", key, after);
        return;
    }
    for (int digits = 15; digits <= 17; digits++) {
        snprintf(buf, sizeof buf, "%.*g", digits, x);
        if (strtod(buf, NULL) == x) break;
    }
    fprintf(f, "\"%s\": %s%s", key, buf, after);
}

static void print_row(const char *name, double simulated, int stable, double exact) {
    if (stable)
        printf("  %-22s%10.4f   exact %10.4f\n", name, simulated, exact);
    else
        printf("  %-22s%10.4f   exact        n/a\n", name, simulated);
}

static void on_progress(double now, long done, long total, size_t waiting, int percent) {
    printf("t=%10.1f  served %6ld/%ld  waiting %4zu  progress (%d%%)\n", now, done, total, waiting,
           percent);
    fflush(stdout);
}

int main(int argc, char **argv) {
    params_t p = {.arrival_rate = 0.9, .service_rate = 1.0, .servers = 1, .customers = 100000,
                  .warmup = -1, .seed = 0};
    const char *output = "results";

    read_settings(argc, argv);
    setting_t *s = settings;
    if (s[S_ARRIVAL].value) p.arrival_rate = parse_rate(s[S_ARRIVAL].option, s[S_ARRIVAL].value);
    if (s[S_SERVICE].value) p.service_rate = parse_rate(s[S_SERVICE].option, s[S_SERVICE].value);
    if (s[S_SERVERS].value) p.servers = parse_count(s[S_SERVERS].option, s[S_SERVERS].value, 1);
    if (s[S_CUSTOMERS].value)
        p.customers = parse_count(s[S_CUSTOMERS].option, s[S_CUSTOMERS].value, 1);
    if (s[S_WARMUP].value) p.warmup = parse_count(s[S_WARMUP].option, s[S_WARMUP].value, 0);
    if (s[S_SEED].value) p.seed = parse_seed(s[S_SEED].option, s[S_SEED].value);
    if (s[S_OUTPUT].value) output = s[S_OUTPUT].value;
    if (p.warmup < 0) p.warmup = p.customers / 10;
    if (p.customers > 1000000000L || p.warmup > 1000000000L)
        bad("--customers/--warmup", "", "at most 1000000000 each");

    double offered = p.arrival_rate / ((double)p.servers * p.service_rate);
    printf("M/M/%ld queue: arrival rate %g, service rate %g, utilisation %.3f, %ld customers "
           "(+%ld warm-up), seed %llu\n",
           p.servers, p.arrival_rate, p.service_rate, offered, p.customers, p.warmup,
           (unsigned long long)p.seed);
    fflush(stdout);

    stats_t st;
    if (simulate(&p, &st, on_progress) != 0) {
        fprintf(stderr, "%s: the simulation ran out of events\n", prog);
        return 1;
    }
    theory_t th = erlang_c(p.arrival_rate, p.service_rate, p.servers);

    double duration = st.t_end - st.t_start;
    double mean_wait = st.started ? st.sum_wait / (double)st.started : NAN;
    double p_wait = st.started ? (double)st.waited / (double)st.started : NAN;
    double mean_sojourn = st.served ? st.sum_sojourn / (double)st.served : NAN;
    double mean_queue = duration > 0 ? st.area_queue / duration : NAN;
    double utilisation = duration > 0 ? st.area_busy / ((double)p.servers * duration) : NAN;

    /* results/summary.json, written to a temporary name first and then renamed into place */
    char path[4096], tmp[4200];
    if (make_dirs(output) != 0) {
        fprintf(stderr, "%s: cannot create %s: %s\n", prog, output, strerror(errno));
        return 1;
    }
    snprintf(path, sizeof path, "%s/summary.json", output);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        fprintf(stderr, "%s: cannot write %s: %s\n", prog, tmp, strerror(errno));
        return 1;
    }
    fprintf(f, "{\n  \"model\": \"M/M/%ld\",\n  \"params\": {\n    ", p.servers);
    json_num(f, "arrival_rate", p.arrival_rate, ",\n    ");
    json_num(f, "service_rate", p.service_rate, ",\n    ");
    fprintf(f, "\"servers\": %ld,\n    \"customers\": %ld,\n    \"warmup\": %ld,\n    ", p.servers,
            p.customers, p.warmup);
    json_num(f, "offered_utilisation", offered, "\n  },\n");
    fprintf(f, "  \"seed\": %llu,\n  \"customers_served\": %ld,\n  ", (unsigned long long)p.seed,
            st.served);
    json_num(f, "simulated_time", duration, ",\n  ");
    json_num(f, "mean_wait", mean_wait, ",\n  ");
    json_num(f, "p_wait", p_wait, ",\n  ");
    json_num(f, "mean_time_in_system", mean_sojourn, ",\n  ");
    json_num(f, "mean_queue_length", mean_queue, ",\n  ");
    json_num(f, "utilisation", utilisation, ",\n  ");
    if (th.stable) {
        fprintf(f, "\"theory\": {\n    ");
        json_num(f, "utilisation", th.utilisation, ",\n    ");
        json_num(f, "p_wait", th.p_wait, ",\n    ");
        json_num(f, "mean_wait", th.mean_wait, ",\n    ");
        json_num(f, "mean_time_in_system", th.mean_time_in_system, ",\n    ");
        json_num(f, "mean_queue_length", th.mean_queue_length, "\n  }\n}\n");
    } else {
        fprintf(f, "\"theory\": null\n}\n");
    }
    int failed = ferror(f);
    failed |= fclose(f) != 0;
    if (failed || rename(tmp, path) != 0) {
        fprintf(stderr, "%s: cannot write %s: %s\n", prog, path, strerror(errno));
        remove(tmp);
        return 1;
    }

    printf("summary (%ld customers served):\n", st.served);
    print_row("mean wait (Wq)", mean_wait, th.stable, th.mean_wait);
    print_row("mean time in system", mean_sojourn, th.stable, th.mean_time_in_system);
    print_row("mean queue length", mean_queue, th.stable, th.mean_queue_length);
    print_row("utilisation", utilisation, th.stable, th.utilisation);
    print_row("P(wait > 0)", p_wait, th.stable, th.p_wait);
    printf("wrote %s\n", path);
    return 0;
}

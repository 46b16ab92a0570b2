/* The simulation: Poisson arrivals, one FIFO queue, c servers with exponential service times.
 * Statistics are collected from the departure of the warm-up'th customer until the last one. */
#include <string.h>

#include "sim.h"

typedef struct {
    const params_t *p;
    rng_t rng;
    event_list_t events;
    fifo_t waiting;
    long busy; /* servers in use */
    int measuring;
    double now;
    stats_t *st;
} state_t;

static void start_service(state_t *s, double arrived) {
    s->busy++;
    if (s->measuring) {
        double wait = s->now - arrived;
        s->st->started++;
        s->st->sum_wait += wait;
        s->st->waited += wait > 0.0;
    }
    events_push(&s->events, s->now + rng_exponential(&s->rng, s->p->service_rate), EV_DEPARTURE,
                arrived);
}

int simulate(const params_t *p, stats_t *st, progress_fn progress) {
    state_t s = {.p = p, .st = st, .measuring = p->warmup == 0};
    long total = p->warmup + p->customers, arrivals = 0, done = 0;
    int reported = 0;
    double last = 0.0;
    event_t e;

    memset(st, 0, sizeof *st);
    rng_seed(&s.rng, p->seed);
    events_init(&s.events);
    fifo_init(&s.waiting);

    events_push(&s.events, rng_exponential(&s.rng, p->arrival_rate), EV_ARRIVAL, 0.0);
    arrivals++;

    while (done < total && events_pop(&s.events, &e)) {
        if (s.measuring) { /* time-weighted: the state held since the previous event */
            st->area_queue += (double)s.waiting.len * (e.time - last);
            st->area_busy += (double)s.busy * (e.time - last);
        }
        last = s.now = e.time;

        if (e.kind == EV_ARRIVAL) {
            if (arrivals < total) {
                events_push(&s.events, s.now + rng_exponential(&s.rng, p->arrival_rate),
                            EV_ARRIVAL, 0.0);
                arrivals++;
            }
            if (s.busy < p->servers)
                start_service(&s, s.now);
            else
                fifo_push(&s.waiting, s.now);
        } else { /* EV_DEPARTURE */
            s.busy--;
            if (s.measuring) {
                st->served++;
                st->sum_sojourn += s.now - e.arrived;
            }
            done++;
            if (!s.measuring && done == p->warmup) {
                s.measuring = 1;
                st->t_start = s.now;
            }
            if (s.waiting.len > 0) start_service(&s, fifo_pop(&s.waiting));

            int percent = (int)(done * 100 / total);
            if (percent >= reported + 10) {
                reported = percent - percent % 10;
                if (progress) progress(s.now, done, total, s.waiting.len, reported);
            }
        }
    }
    st->t_end = s.now;

    events_free(&s.events);
    fifo_free(&s.waiting);
    return done == total ? 0 : -1;
}

/* Exact steady-state M/M/c values (Erlang C), through the Erlang B recursion, which neither
 * overflows nor loses precision for many servers. */
theory_t erlang_c(double lambda, double mu, long c) {
    theory_t t = {0};
    double a = lambda / mu, rho = a / (double)c, b = 1.0;
    if (rho >= 1.0) return t;
    for (long k = 1; k <= c; k++) b = a * b / ((double)k + a * b);
    t.stable = 1;
    t.utilisation = rho;
    t.p_wait = b / (1.0 - rho * (1.0 - b));
    t.mean_queue_length = t.p_wait * rho / (1.0 - rho);
    t.mean_wait = t.mean_queue_length / lambda;
    t.mean_time_in_system = t.mean_wait + 1.0 / mu;
    return t;
}

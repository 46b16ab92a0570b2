/* des: a discrete-event simulation of an M/M/c queue.
 *
 * Files:  rng.c    random numbers (xoshiro256**, seeded by splitmix64; exponential variates)
 *         queue.c  the event list (a binary heap) and the FIFO of waiting customers
 *         sim.c    the simulation loop, statistics and the exact Erlang C values
 *         main.c   parameters (argv and environment), progress output, results/summary.json
 */
#ifndef DES_SIM_H
#define DES_SIM_H

#include <stddef.h>
#include <stdint.h>

/* ---- rng.c ---- */
typedef struct {
    uint64_t s[4];
} rng_t;

void rng_seed(rng_t *r, uint64_t seed);
uint64_t rng_next(rng_t *r);
double rng_uniform(rng_t *r);                 /* in (0, 1), never 0 or 1 */
double rng_exponential(rng_t *r, double rate); /* mean 1/rate */

/* ---- queue.c ---- */
enum event_kind { EV_ARRIVAL, EV_DEPARTURE };

typedef struct {
    double time;
    uint64_t seq; /* insertion order: breaks ties in time deterministically */
    enum event_kind kind;
    double arrived; /* arrival time of the customer (departures) */
} event_t;

typedef struct {
    event_t *items;
    size_t len, cap;
    uint64_t next_seq;
} event_list_t;

void events_init(event_list_t *ev);
void events_free(event_list_t *ev);
void events_push(event_list_t *ev, double time, enum event_kind kind, double arrived);
int events_pop(event_list_t *ev, event_t *out); /* 0 when empty */

typedef struct { /* FIFO of waiting customers' arrival times (a growing ring buffer) */
    double *times;
    size_t head, len, cap;
} fifo_t;

void fifo_init(fifo_t *q);
void fifo_free(fifo_t *q);
void fifo_push(fifo_t *q, double arrived);
double fifo_pop(fifo_t *q); /* the queue must not be empty */

/* ---- sim.c ---- */
typedef struct {
    double arrival_rate; /* lambda: customers per unit time */
    double service_rate; /* mu: per server */
    long servers;        /* c */
    long customers;      /* measured customers */
    long warmup;         /* customers served before measuring starts */
    uint64_t seed;
} params_t;

typedef struct {
    long served;           /* customers that left during the measurement */
    long started;          /* customers that started service during the measurement */
    long waited;           /* ... of which had to wait */
    double sum_wait;       /* their total wait in the queue */
    double sum_sojourn;    /* total time in system of the customers served */
    double area_queue;     /* integral of the number waiting over time */
    double area_busy;      /* integral of the number of busy servers over time */
    double t_start, t_end; /* measurement window */
} stats_t;

typedef struct {
    int stable; /* 0 when arrival_rate >= servers * service_rate: no steady state */
    double utilisation, p_wait, mean_wait, mean_time_in_system, mean_queue_length;
} theory_t;

/* Called every 10% of the departures (done/total count the warm-up too), percent 10..100. */
typedef void (*progress_fn)(double now, long done, long total, size_t waiting, int percent);

int simulate(const params_t *p, stats_t *st, progress_fn progress); /* 0 on success */
theory_t erlang_c(double lambda, double mu, long c);

#endif

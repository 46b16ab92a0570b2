/* The event list (a binary min-heap ordered by time, then insertion order) and the FIFO of
 * waiting customers. Both grow as needed; running out of memory ends the program. */
#include <stdio.h>
#include <stdlib.h>

#include "sim.h"

static void *grow(void *p, size_t *cap, size_t size) {
    size_t n = *cap ? *cap * 2 : 64;
    void *q = realloc(p, n * size);
    if (!q) {
        fprintf(stderr, "des: out of memory\n");
        exit(1);
    }
    *cap = n;
    return q;
}

static int before(const event_t *a, const event_t *b) {
    return a->time < b->time || (a->time == b->time && a->seq < b->seq);
}

void events_init(event_list_t *ev) {
    ev->items = NULL;
    ev->len = ev->cap = 0;
    ev->next_seq = 0;
}

void events_free(event_list_t *ev) {
    free(ev->items);
    events_init(ev);
}

void events_push(event_list_t *ev, double time, enum event_kind kind, double arrived) {
    if (ev->len == ev->cap) ev->items = grow(ev->items, &ev->cap, sizeof *ev->items);
    event_t e = {time, ev->next_seq++, kind, arrived};
    size_t i = ev->len++;
    while (i > 0) { /* sift up */
        size_t parent = (i - 1) / 2;
        if (!before(&e, &ev->items[parent])) break;
        ev->items[i] = ev->items[parent];
        i = parent;
    }
    ev->items[i] = e;
}

int events_pop(event_list_t *ev, event_t *out) {
    if (ev->len == 0) return 0;
    *out = ev->items[0];
    event_t last = ev->items[--ev->len];
    size_t i = 0, n = ev->len;
    for (;;) { /* sift down */
        size_t child = 2 * i + 1;
        if (child >= n) break;
        if (child + 1 < n && before(&ev->items[child + 1], &ev->items[child])) child++;
        if (!before(&ev->items[child], &last)) break;
        ev->items[i] = ev->items[child];
        i = child;
    }
    if (n > 0) ev->items[i] = last;
    return 1;
}

void fifo_init(fifo_t *q) {
    q->times = NULL;
    q->head = q->len = q->cap = 0;
}

void fifo_free(fifo_t *q) {
    free(q->times);
    fifo_init(q);
}

void fifo_push(fifo_t *q, double arrived) {
    if (q->len == q->cap) {
        size_t old = q->cap;
        q->times = grow(q->times, &q->cap, sizeof *q->times);
        /* the buffer was full: times[head..old) then times[0..head). Move the wrapped-around
         * part after the old end, so that the customers sit in order in times[head..head+old). */
        for (size_t i = 0; i < q->head; i++) q->times[old + i] = q->times[i];
    }
    q->times[(q->head + q->len) % q->cap] = arrived;
    q->len++;
}

double fifo_pop(fifo_t *q) {
    double t = q->times[q->head];
    q->head = (q->head + 1) % q->cap;
    q->len--;
    return t;
}

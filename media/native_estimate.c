/* aiortc's receive-side bandwidth estimate (aiortc/rate.py, 1.16: RemoteBitrateEstimator with its rate
 * counter, inter-arrival filter, overuse estimator and detector, AIMD rate control) in C, step for step
 * with the same floating-point operations, so the REMB a publisher gets is the one aiortc would send.
 * It runs on every video packet with abs-send-time: 15 % of a node's CPU at 1 receiver while it was
 * Python (pinned A/B). tests/media/test_native_input.py feeds both the same arrivals and compares every
 * estimate. A receiver's estimator is swapped for this one once its packets take the C path. */
#include "native.h"

#include <math.h>

#define WINDOW_MS 1000 /* RateCounter(1000, 8000) */
#define SCALE 8000
#define GROUP_LENGTH ((5LL << 26) / 1000) /* TIMESTAMP_GROUP_LENGTH_MS << INTER_ARRIVAL_SHIFT // 1000 */
#define TIMESTAMP_TO_MS (1000.0 / (double)(1 << 26))
#define BURST_DELTA_THRESHOLD_MS 5
#define MAX_ADAPT_OFFSET_MS 15
#define MIN_NUM_DELTAS 60
#define DELTA_COUNTER_MAX 1000
#define FRAME_PERIOD_HISTORY 60
#define MAX_SSRCS 16
#define MAX_ARRIVAL_MS (1LL << 43) /* NTP milliseconds until 2178: the arithmetic below cannot overflow */
#define MAX_PAYLOAD (1LL << 20)

enum { NORMAL, UNDERUSING, OVERUSING };
enum { HOLD, INCREASE, DECREASE };

typedef struct {
    long long count, value;
} Bucket;

typedef struct {
    long long arrival, size;
    uint32_t first_ts, last_ts;
} Group;

typedef struct {
    PyObject_HEAD
    /* RateCounter */
    Bucket buckets[WINDOW_MS], total;
    int origin_index, has_origin, incoming_initialized;
    long long origin_ms;
    /* InterArrival */
    int has_cur, has_prev;
    Group cur, prev;
    /* OveruseEstimator */
    double E[2][2], offset, est_prev_offset, slope, hist[FRAME_PERIOD_HISTORY], avg_noise, var_noise;
    int num_deltas, hist_len;
    /* OveruseDetector */
    int hypothesis, overuse_counter, has_overuse_time, has_det_update;
    double overuse_time, det_prev_offset, threshold;
    long long det_last_update;
    /* AimdRateControl */
    int has_avg_max, cur_init, has_first_thr, has_last_change, near_max, state;
    double avg_max, var_max;
    long long current_bitrate, first_thr_time, last_change, latest_thr, rtt;
    /* RemoteBitrateEstimator */
    int has_last_update, n_ssrcs;
    long long last_update_ms;
    uint32_t ssrcs[MAX_SSRCS];
} Estimator;

static void estimator_reset(Estimator *e) {
    memset((char *)e + sizeof(PyObject), 0, sizeof(Estimator) - sizeof(PyObject));
    e->incoming_initialized = 1;
    e->E[0][0] = 100.0;
    e->E[1][1] = 0.1;
    e->slope = 1.0 / 64;
    e->var_noise = 50.0;
    e->threshold = 12.5;
    e->var_max = 0.4;
    e->current_bitrate = 30000000;
    e->latest_thr = 30000000;
    e->rtt = 200;
    e->state = HOLD;
    e->hypothesis = NORMAL;
}

static int Estimator_init(Estimator *e, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "", kwlist)) return -1;
    estimator_reset(e);
    return 0;
}

static PyObject *Estimator_new(PyTypeObject *type, PyObject *args, PyObject *kwds) { /* usable without __init__ */
    PyObject *self = PyType_GenericNew(type, args, kwds);
    if (self != NULL) estimator_reset((Estimator *)self);
    return self;
}

/* -- RateCounter -- */
static void erase_old(Estimator *e, long long now) {
    long long new_origin = now - WINDOW_MS + 1;
    if (new_origin - e->origin_ms >= WINDOW_MS) { /* the whole window is old: what the loop would do, at once */
        memset(e->buckets, 0, sizeof e->buckets);
        e->total.count = e->total.value = 0;
        e->origin_index = (int)((e->origin_index + (new_origin - e->origin_ms)) % WINDOW_MS);
        e->origin_ms = new_origin;
        return;
    }
    while (e->origin_ms < new_origin) {
        Bucket *b = &e->buckets[e->origin_index];
        e->total.count -= b->count;
        e->total.value -= b->value;
        b->count = b->value = 0;
        e->origin_index = (e->origin_index + 1) % WINDOW_MS;
        e->origin_ms++;
    }
}

static void counter_add(Estimator *e, long long value, long long now) {
    if (!e->has_origin) {
        e->origin_ms = now;
        e->has_origin = 1;
    } else {
        erase_old(e, now);
    }
    long long index = (e->origin_index + now - e->origin_ms) % WINDOW_MS;
    if (index < 0) index += WINDOW_MS; /* Python's % */
    e->buckets[index].count++;
    e->buckets[index].value += value;
    e->total.count++;
    e->total.value += value;
}

static long long counter_rate(Estimator *e, long long now) { /* -1: None */
    if (!e->has_origin) return -1;
    erase_old(e, now);
    long long active = now - e->origin_ms + 1;
    if (e->total.count > 0 && active > 1) return (long long)nearbyint((double)(SCALE * e->total.value) / (double)active);
    return -1;
}

static void counter_reset(Estimator *e) {
    memset(e->buckets, 0, sizeof e->buckets);
    e->origin_index = 0;
    e->has_origin = 0;
    e->total.count = e->total.value = 0;
}

/* -- InterArrival -- */
static int uint32_gt(uint32_t a, uint32_t b) {
    return (a < b && b - a > 0x80000000u) || (a > b && a - b < 0x80000000u);
}

static void new_group(Group *g, uint32_t ts) {
    g->arrival = g->size = 0;
    g->first_ts = g->last_ts = ts;
}

static int belongs_to_burst(Estimator *e, uint32_t ts, long long arrival) {
    uint32_t td = ts - e->cur.last_ts;
    long long td_ms = (long long)nearbyint(TIMESTAMP_TO_MS * td);
    long long ad = arrival - e->cur.arrival;
    return td_ms == 0 || ((ad - td_ms) < 0 && ad <= BURST_DELTA_THRESHOLD_MS);
}

/* 1 with the deltas filled in, or 0 */
static int compute_deltas(Estimator *e, uint32_t ts, long long arrival, long long size, uint32_t *d_ts,
                          long long *d_arrival, long long *d_size) {
    int got = 0;
    if (!e->has_cur) {
        new_group(&e->cur, ts);
        e->has_cur = 1;
    } else if ((uint32_t)(ts - e->cur.first_ts) >= 0x80000000u) {
        return 0; /* out of order */
    } else if (!belongs_to_burst(e, ts, arrival) && (uint32_t)(ts - e->cur.first_ts) > GROUP_LENGTH) {
        if (e->has_prev) {
            *d_ts = e->cur.last_ts - e->prev.last_ts;
            *d_arrival = e->cur.arrival - e->prev.arrival;
            *d_size = e->cur.size - e->prev.size;
            got = 1;
        }
        e->prev = e->cur;
        e->has_prev = 1;
        new_group(&e->cur, ts);
    } else if (uint32_gt(ts, e->cur.last_ts)) {
        e->cur.last_ts = ts;
    }
    e->cur.size += size;
    e->cur.arrival = arrival;
    return got;
}

/* -- OveruseEstimator -- */
static double update_min_frame_period(Estimator *e, double ts_delta) {
    double m = ts_delta;
    if (e->hist_len >= FRAME_PERIOD_HISTORY) {
        memmove(e->hist, e->hist + 1, (FRAME_PERIOD_HISTORY - 1) * sizeof(double));
        e->hist_len--;
    }
    for (int i = 0; i < e->hist_len; i++) m = e->hist[i] < m ? e->hist[i] : m;
    e->hist[e->hist_len++] = ts_delta;
    return m;
}

static void update_noise(Estimator *e, double residual, double ts_delta) {
    double alpha = e->num_deltas > 10 * 30 ? 0.002 : 0.01;
    double beta = pow(1 - alpha, ts_delta * 30.0 / 1000.0);
    e->avg_noise = beta * e->avg_noise + (1 - beta) * residual;
    e->var_noise = beta * e->var_noise + (1 - beta) * pow(e->avg_noise - residual, 2.0);
    if (e->var_noise < 1) e->var_noise = 1;
}

static void estimator_update(Estimator *e, long long time_delta_ms, double ts_delta_ms, long long size_delta,
                             int hypothesis) {
    double min_frame_period = update_min_frame_period(e, ts_delta_ms);
    double t_ts_delta = (double)time_delta_ms - ts_delta_ms;
    double h0 = (double)size_delta, h1 = 1.0;
    e->num_deltas = e->num_deltas + 1 < DELTA_COUNTER_MAX ? e->num_deltas + 1 : DELTA_COUNTER_MAX;
    e->E[0][0] += 1e-13;
    e->E[1][1] += 1e-3;
    if ((hypothesis == OVERUSING && e->offset < e->est_prev_offset) ||
        (hypothesis == UNDERUSING && e->offset > e->est_prev_offset))
        e->E[1][1] += 10 * 1e-3;
    double Eh0 = e->E[0][0] * h0 + e->E[0][1] * h1, Eh1 = e->E[1][0] * h0 + e->E[1][1] * h1;
    double residual = t_ts_delta - e->slope * h0 - e->offset;
    if (hypothesis == NORMAL) {
        double max_residual = 3.0 * sqrt(e->var_noise);
        if (fabs(residual) < max_residual)
            update_noise(e, residual, min_frame_period);
        else
            update_noise(e, residual < 0 ? -max_residual : max_residual, min_frame_period);
    }
    double denom = e->var_noise + h0 * Eh0 + h1 * Eh1;
    double K0 = Eh0 / denom, K1 = Eh1 / denom;
    double IKh00 = 1.0 - K0 * h0, IKh01 = -K0 * h1, IKh10 = -K1 * h0, IKh11 = 1.0 - K1 * h1;
    double e00 = e->E[0][0], e01 = e->E[0][1];
    e->E[0][0] = e00 * IKh00 + e->E[1][0] * IKh01;
    e->E[0][1] = e01 * IKh00 + e->E[1][1] * IKh01;
    e->E[1][0] = e00 * IKh10 + e->E[1][0] * IKh11;
    e->E[1][1] = e01 * IKh10 + e->E[1][1] * IKh11;
    e->est_prev_offset = e->offset;
    e->slope += K0 * residual;
    e->offset += K1 * residual;
}

/* -- OveruseDetector -- */
static void update_threshold(Estimator *e, double modified_offset, long long now) {
    if (!e->has_det_update) {
        e->det_last_update = now;
        e->has_det_update = 1;
    }
    if (fabs(modified_offset) > e->threshold + MAX_ADAPT_OFFSET_MS) {
        e->det_last_update = now;
        return;
    }
    double k = fabs(modified_offset) < e->threshold ? 0.039 : 0.0087;
    long long td = now - e->det_last_update < 100 ? now - e->det_last_update : 100;
    e->threshold += k * (fabs(modified_offset) - e->threshold) * (double)td;
    e->threshold = e->threshold < 600 ? e->threshold : 600;
    e->threshold = e->threshold > 6 ? e->threshold : 6;
    e->det_last_update = now;
}

static void detect(Estimator *e, double offset, double ts_delta_ms, int num_deltas, long long now) {
    if (num_deltas < 2) return;
    double T = (num_deltas < MIN_NUM_DELTAS ? num_deltas : MIN_NUM_DELTAS) * offset;
    if (T > e->threshold) {
        if (!e->has_overuse_time) {
            e->overuse_time = ts_delta_ms / 2;
            e->has_overuse_time = 1;
        } else {
            e->overuse_time += ts_delta_ms;
        }
        e->overuse_counter++;
        if (e->overuse_time > 10 && e->overuse_counter > 1 && offset >= e->det_prev_offset) {
            e->overuse_counter = 0;
            e->overuse_time = 0;
            e->hypothesis = OVERUSING;
        }
    } else {
        e->overuse_counter = 0;
        e->has_overuse_time = 0;
        e->hypothesis = T < -e->threshold ? UNDERUSING : NORMAL;
    }
    e->det_prev_offset = offset;
    update_threshold(e, T, now);
}

/* -- AimdRateControl -- */
static long long near_max_rate_increase(Estimator *e) {
    double bits_per_frame = e->current_bitrate / 30.0;
    double packets_per_frame = ceil(bits_per_frame / (8 * 1200));
    if (packets_per_frame == 0) return 4000;
    double avg_packet_size_bits = bits_per_frame / packets_per_frame;
    long long v = (long long)((avg_packet_size_bits * 1000) / (double)(e->rtt + 100));
    return v > 4000 ? v : 4000;
}

static long long clamp_bitrate(Estimator *e, long long new_bitrate, long long thr) {
    long long max_bitrate = (long long)(1.5 * thr) + 10000;
    if (e->current_bitrate > max_bitrate) max_bitrate = e->current_bitrate;
    return new_bitrate < max_bitrate ? new_bitrate : max_bitrate;
}

static void update_max_throughput(Estimator *e, double thr_kbps) {
    double alpha = 0.05;
    e->avg_max = e->has_avg_max ? (1 - alpha) * e->avg_max + alpha * thr_kbps : thr_kbps;
    e->has_avg_max = 1;
    double norm = e->avg_max > 1 ? e->avg_max : 1;
    e->var_max = (1 - alpha) * e->var_max + alpha * pow(e->avg_max - thr_kbps, 2.0) / norm;
    e->var_max = e->var_max < 2.5 ? e->var_max : 2.5;
    e->var_max = e->var_max > 0.4 ? e->var_max : 0.4;
}

static long long rate_update(Estimator *e, int usage, long long thr, long long now) { /* thr -1: None; -1: None */
    if (!e->cur_init && thr >= 0) {
        if (!e->has_first_thr) {
            e->first_thr_time = now;
            e->has_first_thr = 1;
        } else if (now - e->first_thr_time > 3000) {
            e->current_bitrate = thr;
            e->cur_init = 1;
        }
    }
    if (!e->cur_init && usage != OVERUSING) return -1;
    if (usage == NORMAL && e->state == HOLD) {
        e->last_change = now;
        e->has_last_change = 1;
        e->state = INCREASE;
    } else if (usage == OVERUSING) {
        e->state = DECREASE;
    } else if (usage == UNDERUSING) {
        e->state = HOLD;
    }
    long long new_bitrate = e->current_bitrate;
    if (thr >= 0)
        e->latest_thr = thr;
    else
        thr = e->latest_thr;
    double thr_kbps = thr / 1000.0;
    if (e->state == INCREASE) {
        if (e->has_avg_max) {
            double sigma = sqrt(e->var_max * e->avg_max);
            if (thr_kbps >= e->avg_max + 3 * sigma) {
                e->near_max = 0;
                e->has_avg_max = 0;
            }
        }
        if (e->near_max) {
            new_bitrate += (long long)((double)((now - e->last_change) * near_max_rate_increase(e)) / 1000);
        } else {
            double alpha = 1.08;
            if (e->has_last_change) {
                long long elapsed = now - e->last_change < 1000 ? now - e->last_change : 1000;
                alpha = pow(alpha, elapsed / 1000.0);
            }
            double inc = (alpha - 1) * new_bitrate;
            new_bitrate += (long long)(inc > 1000 ? inc : 1000);
        }
        e->last_change = now;
        e->has_last_change = 1;
    } else if (e->state == DECREASE) {
        if (e->has_avg_max) {
            double sigma = sqrt(e->var_max * e->avg_max);
            if (thr_kbps < e->avg_max - 3 * sigma) e->has_avg_max = 0;
        }
        update_max_throughput(e, thr_kbps);
        e->near_max = 1;
        new_bitrate = (long long)nearbyint(0.85 * thr);
        e->last_change = now;
        e->has_last_change = 1;
        e->state = HOLD;
    }
    e->current_bitrate = clamp_bitrate(e, new_bitrate, thr);
    return e->current_bitrate;
}

/* -- RemoteBitrateEstimator.add: the bitrate to send as REMB, or -1 -- */
long long native_estimate(PyObject *self, long long arrival, uint32_t abs_send_time, long long size, uint32_t ssrc) {
    Estimator *e = (Estimator *)self;
    uint32_t ts = abs_send_time << 8;
    int known = 0;
    for (int i = 0; i < e->n_ssrcs; i++) known |= e->ssrcs[i] == ssrc;
    if (!known && e->n_ssrcs < MAX_SSRCS) e->ssrcs[e->n_ssrcs++] = ssrc;
    if (counter_rate(e, arrival) >= 0) {
        e->incoming_initialized = 1;
    } else if (e->incoming_initialized) {
        counter_reset(e);
        e->incoming_initialized = 0;
    }
    counter_add(e, size, arrival);
    uint32_t d_ts;
    long long d_arrival, d_size;
    if (compute_deltas(e, ts, arrival, size, &d_ts, &d_arrival, &d_size)) {
        double ts_delta_ms = d_ts * TIMESTAMP_TO_MS;
        estimator_update(e, d_arrival, ts_delta_ms, d_size, e->hypothesis);
        detect(e, e->offset, ts_delta_ms, e->num_deltas, arrival);
    }
    if (!e->has_last_update || arrival - e->last_update_ms > 500 || e->hypothesis == OVERUSING) {
        long long target = rate_update(e, e->hypothesis, counter_rate(e, arrival), arrival);
        if (target >= 0) {
            e->last_update_ms = arrival;
            e->has_last_update = 1;
            return target;
        }
    }
    return -1;
}

PyObject *native_estimate_ssrcs(PyObject *self) {
    Estimator *e = (Estimator *)self;
    PyObject *list = PyList_New(e->n_ssrcs);
    for (int i = 0; list && i < e->n_ssrcs; i++) {
        PyObject *v = PyLong_FromUnsignedLong(e->ssrcs[i]);
        if (v == NULL) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, i, v);
    }
    return list;
}

static PyObject *Estimator_add(Estimator *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"arrival_time_ms", "abs_send_time", "payload_size", "ssrc", NULL};
    long long arrival, size;
    unsigned long abs_time, ssrc;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "LkLk", kwlist, &arrival, &abs_time, &size, &ssrc)) return NULL;
    if (arrival < 0 || arrival > MAX_ARRIVAL_MS || size < 0 || size > MAX_PAYLOAD) {
        PyErr_SetString(PyExc_ValueError, "add: arrival_time_ms or payload_size out of range");
        return NULL;
    }
    long long target = native_estimate((PyObject *)self, arrival, (uint32_t)abs_time, size, (uint32_t)ssrc);
    if (target < 0) Py_RETURN_NONE;
    PyObject *ssrcs = native_estimate_ssrcs((PyObject *)self);
    return ssrcs ? Py_BuildValue("(LN)", target, ssrcs) : NULL;
}

static PyMethodDef Estimator_methods[] = {
    {"add", (PyCFunction)(void (*)(void))Estimator_add, METH_VARARGS | METH_KEYWORDS,
     "add($self, /, arrival_time_ms, abs_send_time, payload_size, ssrc)\n--\n\n(bitrate, ssrcs) for a REMB, or None"},
    {NULL}};

PyTypeObject NativeEstimatorType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "media.native.RemoteBitrateEstimator",
    .tp_doc = "RemoteBitrateEstimator()\n--\n\naiortc's abs-send-time bandwidth estimate, in C",
    .tp_basicsize = sizeof(Estimator),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = Estimator_new,
    .tp_init = (initproc)Estimator_init,
    .tp_methods = Estimator_methods,
};

/* aiortc.rate's (RemoteBitrateEstimator and what it is made of): compared with it in a test */
int native_estimate_export(PyObject *m) {
    if (PyModule_AddIntConstant(m, "ESTIMATE_WINDOW_MS", WINDOW_MS) < 0 ||
        PyModule_AddIntConstant(m, "ESTIMATE_SCALE", SCALE) < 0 ||
        PyModule_AddIntConstant(m, "ESTIMATE_GROUP_LENGTH", (long)GROUP_LENGTH) < 0 ||
        native_export_float(m, "TIMESTAMP_TO_MS", TIMESTAMP_TO_MS) < 0 ||
        PyModule_AddIntConstant(m, "BURST_DELTA_THRESHOLD_MS", BURST_DELTA_THRESHOLD_MS) < 0 ||
        PyModule_AddIntConstant(m, "MAX_ADAPT_OFFSET_MS", MAX_ADAPT_OFFSET_MS) < 0 ||
        PyModule_AddIntConstant(m, "MIN_NUM_DELTAS", MIN_NUM_DELTAS) < 0 ||
        PyModule_AddIntConstant(m, "DELTA_COUNTER_MAX", DELTA_COUNTER_MAX) < 0)
        return -1;
    return PyModule_AddIntConstant(m, "FRAME_PERIOD_HISTORY", FRAME_PERIOD_HISTORY);
}

/* aiortc's StreamStatistics and NackGenerator (aiortc/rtcrtpreceiver.py, 1.16) in C, with the same
 * attributes, so aiortc's receiver reports, getStats and NACKs read them as before while the native
 * input path (native_input.c) feeds them without a Python call. A receiver's objects are swapped
 * for these (media/aiortc_hooks.py) once its packets take that path; tests/media/test_native_input.py
 * feeds both the same sequences. */
#include "native.h"

#include <math.h>

#define RTP_HISTORY_SIZE 128 /* aiortc.rtp: how far back the NACK generator tracks missing packets */
#define PACKETS_LOST_MIN (-0x800000LL)
#define PACKETS_LOST_MAX 0x7FFFFFLL
#define MAX_CLOCKRATE 1000000 /* RTP clocks are 8 to 90 kHz: the arrival time in ticks stays an exact double */
#define MAX_TICKS 9007199254740992.0 /* 2^53: an arrival in ticks beyond it is refused, not cast */
#define MAX_COUNT (1LL << 53) /* any counter taken from aiortc's objects */

static int uint16_gt(int a, int b) { /* aiortc.utils.uint16_gt */
    return (a < b && b - a > 0x8000) || (a > b && a - b < 0x8000);
}

/* .sequence_number (16 bits) and .timestamp (32 bits); -1 with an error if absent or out of range */
static int read_packet(PyObject *packet, long *seq, long long *ts) {
    PyObject *s = PyObject_GetAttrString(packet, "sequence_number");
    PyObject *t = s ? PyObject_GetAttrString(packet, "timestamp") : NULL;
    int rc = -1;
    if (t == NULL) goto done;
    if ((*seq = PyLong_AsLong(s)) == -1 && PyErr_Occurred()) goto done;
    if ((*ts = PyLong_AsLongLong(t)) == -1 && PyErr_Occurred()) goto done;
    if (*seq < 0 || *seq > 0xFFFF || *ts < 0 || *ts > 0xFFFFFFFFLL) {
        PyErr_SetString(PyExc_ValueError, "an RTP packet's sequence number is 16 bits, its timestamp 32");
        goto done;
    }
    rc = 0;
done:
    Py_XDECREF(s);
    Py_XDECREF(t);
    return rc;
}

/* -- StreamStatistics -------------------------------------------------------------------------- */
typedef struct {
    PyObject_HEAD
    int has_base, has_max, has_last;
    long base_seq, max_seq;
    long long cycles, packets_received, jitter_q4, last_arrival, last_timestamp, expected_prior, received_prior;
    long clockrate;
} Stats;

static int Stats_init(Stats *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"clockrate", NULL};
    long clockrate;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "l", kwlist, &clockrate)) return -1;
    if (clockrate < 1 || clockrate > MAX_CLOCKRATE) {
        PyErr_SetString(PyExc_ValueError, "clockrate: 1 to 1,000,000 Hz");
        return -1;
    }
    self->clockrate = clockrate;
    return 0;
}

static void stats_add(Stats *s, long seq, long long ts, double now) {
    int in_order = !s->has_max || uint16_gt((int)seq, (int)s->max_seq);
    s->packets_received++;
    if (!s->has_base) {
        s->base_seq = seq;
        s->has_base = 1;
    }
    if (!in_order) return;
    long long arrival = (long long)(now * s->clockrate);
    if (s->has_max && seq < s->max_seq) s->cycles += 1 << 16;
    s->max_seq = seq;
    s->has_max = 1;
    if (s->has_last && ts != s->last_timestamp && s->packets_received > 1) {
        long long diff = (arrival - s->last_arrival) - (ts - s->last_timestamp);
        if (diff < 0) diff = -diff;
        s->jitter_q4 += diff - ((s->jitter_q4 + 8) >> 4);
    }
    s->last_arrival = arrival;
    s->last_timestamp = ts;
    s->has_last = 1;
}

void native_stats_add(PyObject *stats, int seq, uint32_t ts) { stats_add((Stats *)stats, seq, ts, native_realtime()); }

static PyObject *Stats_add(Stats *self, PyObject *const *args, Py_ssize_t nargs) {
    long seq;
    long long ts;
    if (nargs < 1 || nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "add(packet, now=None)");
        return NULL;
    }
    double now = native_realtime();
    if (nargs > 1 && args[1] != Py_None && (now = PyFloat_AsDouble(args[1])) == -1.0 && PyErr_Occurred()) return NULL;
    if (!isfinite(now) || fabs(now * self->clockrate) > MAX_TICKS) { /* (long long) of it would be undefined */
        PyErr_SetString(PyExc_ValueError, "add: `now` is not a time this clock can count in ticks");
        return NULL;
    }
    if (read_packet(args[0], &seq, &ts) < 0) return NULL;
    stats_add(self, seq, ts, now);
    Py_RETURN_NONE;
}

static long long expected(Stats *s) { return s->cycles + s->max_seq - s->base_seq + 1; }

static PyObject *Stats_fraction_lost(Stats *s, void *c) { /* as aiortc: reading it starts the next interval */
    if (!s->has_max) return PyLong_FromLong(0);
    long long exp = expected(s), interval = exp - s->expected_prior;
    s->expected_prior = exp;
    long long received = s->packets_received - s->received_prior;
    s->received_prior = s->packets_received;
    long long lost = interval - received;
    if (interval == 0 || lost <= 0) return PyLong_FromLong(0);
    return PyLong_FromLongLong((lost << 8) / interval);
}

static PyObject *Stats_packets_lost(Stats *s, void *c) {
    long long lost = s->has_max ? expected(s) - s->packets_received : 0;
    return PyLong_FromLongLong(lost < PACKETS_LOST_MIN ? PACKETS_LOST_MIN : lost > PACKETS_LOST_MAX ? PACKETS_LOST_MAX : lost);
}

static PyObject *Stats_packets_expected(Stats *s, void *c) {
    return s->has_max ? PyLong_FromLongLong(expected(s)) : Py_NewRef(Py_None);
}
static PyObject *Stats_jitter(Stats *s, void *c) { return PyLong_FromLongLong(s->jitter_q4 >> 4); }
static PyObject *Stats_base_seq(Stats *s, void *c) { return s->has_base ? PyLong_FromLong(s->base_seq) : Py_NewRef(Py_None); }
static PyObject *Stats_max_seq(Stats *s, void *c) { return s->has_max ? PyLong_FromLong(s->max_seq) : Py_NewRef(Py_None); }
static PyObject *Stats_cycles(Stats *s, void *c) { return PyLong_FromLongLong(s->cycles); }
static PyObject *Stats_received(Stats *s, void *c) { return PyLong_FromLongLong(s->packets_received); }
static PyObject *Stats_clockrate(Stats *s, void *c) { return PyLong_FromLong(s->clockrate); }

static PyObject *Stats_take(Stats *self, PyObject *other) {
    /* Continue from an aiortc StreamStatistics' state, so nothing already counted is lost. */
    static const struct {
        const char *attr;
        long long lo, hi;
    } fields[9] = {{"base_seq", 0, 0xFFFF}, {"max_seq", 0, 0xFFFF}, {"cycles", 0, MAX_COUNT},
                   {"packets_received", 0, MAX_COUNT}, {"_jitter_q4", 0, MAX_COUNT},
                   {"_last_arrival", -MAX_COUNT, MAX_COUNT}, {"_last_timestamp", 0, 0xFFFFFFFFLL},
                   {"_expected_prior", -MAX_COUNT, MAX_COUNT}, {"_received_prior", 0, MAX_COUNT}};
    long long got[9];
    int present[9];
    for (int i = 0; i < 9; i++) { /* all read and checked before any is taken */
        PyObject *v = PyObject_GetAttrString(other, fields[i].attr);
        if (v == NULL) return NULL;
        present[i] = v != Py_None;
        got[i] = present[i] ? PyLong_AsLongLong(v) : 0;
        Py_DECREF(v);
        if (got[i] == -1 && PyErr_Occurred()) return NULL;
        if (got[i] < fields[i].lo || got[i] > fields[i].hi) {
            PyErr_Format(PyExc_ValueError, "take: %s out of range", fields[i].attr);
            return NULL;
        }
    }
    if (present[0]) { self->base_seq = got[0]; self->has_base = 1; }
    if (present[1]) { self->max_seq = got[1]; self->has_max = 1; }
    if (present[2]) self->cycles = got[2];
    if (present[3]) self->packets_received = got[3];
    if (present[4]) self->jitter_q4 = got[4];
    if (present[5]) { self->last_arrival = got[5]; self->has_last = 1; }
    if (present[6]) self->last_timestamp = got[6];
    if (present[7]) self->expected_prior = got[7];
    if (present[8]) self->received_prior = got[8];
    Py_RETURN_NONE;
}

static PyGetSetDef Stats_getset[] = {
    {"fraction_lost", (getter)Stats_fraction_lost, NULL, NULL, NULL},
    {"packets_lost", (getter)Stats_packets_lost, NULL, NULL, NULL},
    {"packets_expected", (getter)Stats_packets_expected, NULL, NULL, NULL},
    {"jitter", (getter)Stats_jitter, NULL, NULL, NULL},
    {"base_seq", (getter)Stats_base_seq, NULL, NULL, NULL},
    {"max_seq", (getter)Stats_max_seq, NULL, NULL, NULL},
    {"cycles", (getter)Stats_cycles, NULL, NULL, NULL},
    {"packets_received", (getter)Stats_received, NULL, NULL, NULL},
    {"_clockrate", (getter)Stats_clockrate, NULL, NULL, NULL},
    {NULL}};

static PyMethodDef Stats_methods[] = {
    {"add", (PyCFunction)(void (*)(void))Stats_add, METH_FASTCALL,
     "add($self, packet, now=None, /)\n--\n\n"
     "count a packet (anything with sequence_number and timestamp) arriving at `now` (Unix seconds; the clock "
     "if not given)"},
    {"take", (PyCFunction)Stats_take, METH_O, "take($self, other, /)\n--\n\ncontinue from an aiortc StreamStatistics"},
    {NULL}};

PyTypeObject NativeStatsType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "media.native.StreamStatistics",
    .tp_doc = "StreamStatistics(clockrate)\n--\n\naiortc's receive statistics for one SSRC, in C",
    .tp_basicsize = sizeof(Stats),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Stats_init,
    .tp_methods = Stats_methods,
    .tp_getset = Stats_getset,
};

/* -- NackGenerator ------------------------------------------------------------------------------ */
typedef struct {
    PyObject_HEAD
    int has_max;
    int max_seq;
    int count; /* missing sequence numbers held */
    uint64_t missing[65536 / 64];
} Nack;

static int nack_has(Nack *n, int seq) { return (n->missing[seq >> 6] >> (seq & 63)) & 1; }
static void nack_set(Nack *n, int seq) {
    if (!nack_has(n, seq)) {
        n->missing[seq >> 6] |= 1ULL << (seq & 63);
        n->count++;
    }
}
static void nack_clear(Nack *n, int seq) {
    if (nack_has(n, seq)) {
        n->missing[seq >> 6] &= ~(1ULL << (seq & 63));
        n->count--;
    }
}

static void nack_truncate(Nack *n) { /* forget what is older than RTP_HISTORY_SIZE behind the newest */
    if (!n->has_max || !n->count) return;
    int min_seq = (n->max_seq - RTP_HISTORY_SIZE) & 0xFFFF;
    for (int w = 0; w < 65536 / 64 && n->count; w++) {
        uint64_t bits = n->missing[w];
        while (bits) {
            int seq = w * 64 + __builtin_ctzll(bits);
            bits &= bits - 1;
            if (uint16_gt(min_seq, seq)) nack_clear(n, seq);
        }
    }
}

static int nack_add(Nack *n, int seq) {
    int missed = 0;
    if (!n->has_max) {
        n->max_seq = seq;
        n->has_max = 1;
        return 0;
    }
    if (uint16_gt(seq, n->max_seq)) {
        int s = (n->max_seq + 1) & 0xFFFF;
        if (uint16_gt(seq, s)) missed = 1;
        /* only the last RTP_HISTORY_SIZE of a gap outlive the truncation below */
        int gap = (seq - s) & 0xFFFF;
        if (gap > RTP_HISTORY_SIZE + 1) s = (seq - RTP_HISTORY_SIZE - 1) & 0xFFFF;
        while (uint16_gt(seq, s)) {
            nack_set(n, s);
            s = (s + 1) & 0xFFFF;
        }
        n->max_seq = seq;
    } else {
        nack_clear(n, seq);
    }
    nack_truncate(n);
    return missed;
}

int native_nack_add(PyObject *nack, int seq) { return nack_add((Nack *)nack, seq); }

static PyObject *Nack_add(Nack *self, PyObject *packet) {
    long seq;
    long long ts;
    if (read_packet(packet, &seq, &ts) < 0) return NULL;
    return PyBool_FromLong(nack_add(self, (int)(seq & 0xFFFF)));
}

static PyObject *Nack_truncate(Nack *self, PyObject *unused) {
    nack_truncate(self);
    Py_RETURN_NONE;
}

static PyObject *Nack_missing(Nack *self, void *c) {
    PyObject *set = PySet_New(NULL);
    for (int w = 0; set && w < 65536 / 64; w++) {
        uint64_t bits = self->missing[w];
        while (bits) {
            PyObject *seq = PyLong_FromLong(w * 64 + __builtin_ctzll(bits));
            bits &= bits - 1;
            if (seq == NULL || PySet_Add(set, seq) < 0) {
                Py_XDECREF(seq);
                Py_DECREF(set);
                return NULL;
            }
            Py_DECREF(seq);
        }
    }
    return set;
}

static PyObject *Nack_max_seq(Nack *self, void *c) {
    return self->has_max ? PyLong_FromLong(self->max_seq) : Py_NewRef(Py_None);
}

static PyObject *Nack_take(Nack *self, PyObject *other) {
    /* Continue from an aiortc NackGenerator's state. */
    PyObject *max = PyObject_GetAttrString(other, "max_seq");
    PyObject *missing = max ? PyObject_GetAttrString(other, "missing") : NULL;
    PyObject *it = missing ? PyObject_GetIter(missing) : NULL, *item;
    if (it == NULL) goto done;
    if (max != Py_None) {
        long m = PyLong_AsLong(max);
        if (m == -1 && PyErr_Occurred()) goto done;
        self->max_seq = (int)(m & 0xFFFF);
        self->has_max = 1;
    }
    while ((item = PyIter_Next(it)) != NULL) {
        long seq = PyLong_AsLong(item);
        Py_DECREF(item);
        if (seq == -1 && PyErr_Occurred()) break; /* no further call with the error pending */
        nack_set(self, (int)(seq & 0xFFFF));
    }
done:
    Py_XDECREF(max);
    Py_XDECREF(missing);
    Py_XDECREF(it);
    if (PyErr_Occurred()) return NULL;
    Py_RETURN_NONE;
}

static PyGetSetDef Nack_getset[] = {
    {"missing", (getter)Nack_missing, NULL, "the sequence numbers still missing (a new set)", NULL},
    {"max_seq", (getter)Nack_max_seq, NULL, NULL, NULL},
    {NULL}};

static PyMethodDef Nack_methods[] = {
    {"add", (PyCFunction)Nack_add, METH_O,
     "add($self, packet, /)\n--\n\nmark a packet received; True if it showed packets missing"},
    {"truncate", (PyCFunction)Nack_truncate, METH_NOARGS, "truncate($self, /)\n--\n\n"},
    {"take", (PyCFunction)Nack_take, METH_O, "take($self, other, /)\n--\n\ncontinue from an aiortc NackGenerator"},
    {NULL}};

PyTypeObject NativeNackType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "media.native.NackGenerator",
    .tp_doc = "NackGenerator()\n--\n\naiortc's missing-packet tracker, in C",
    .tp_basicsize = sizeof(Nack),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_methods = Nack_methods,
    .tp_getset = Nack_getset,
};

int native_stats_ready(void) {
    if (PyType_Ready(&NativeStatsType) < 0) return -1;
    return PyType_Ready(&NativeNackType);
}

int native_stats_export(PyObject *m) {
    if (PyModule_AddIntConstant(m, "RTP_HISTORY_SIZE", RTP_HISTORY_SIZE) < 0 ||
        PyModule_AddIntConstant(m, "PACKETS_LOST_MIN", (long)PACKETS_LOST_MIN) < 0)
        return -1;
    return PyModule_AddIntConstant(m, "PACKETS_LOST_MAX", (long)PACKETS_LOST_MAX);
}

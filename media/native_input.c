/* A connected leg's incoming SRTP in C: read every waiting datagram, and for a media packet of a stream
 * registered here, unprotect it (libsrtp, the session aiortc keyed), read its header, count it in the
 * receiver's statistics and NACK generator (native_stats.c), count the source's frames, and fan it out
 * (native_output.c) — the path media/aiortc_hooks.py's ForwardOnly takes in Python, without a Python
 * frame per packet. Python is called only for what is rare or owned by aiortc: a REMB to send (the
 * estimate itself is native_estimate.c), an audio level (speaker election), a NACK to send, a stream
 * seen again after a second, a key frame's size. Anything else — STUN, DTLS, RTCP, RTX, an unknown
 * SSRC or payload type, a source someone takes frames from — is handed back to Python unchanged
 * (`protocol.datagram_received`), so aiortc's own handling stays the fallback for all of it. */
#include "native.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <string.h>
#include <sys/socket.h>

#define MAX_STREAMS 16
#define READS_PER_WAKEUP 64 /* bounded, so a flood cannot starve the loop's other work (aiortc_hooks: the same) */
#define ACTIVE_MS 1000      /* how often a stream's "last seen" is refreshed (aiortc reads it to the second) */
#define NTP_UNIX_OFFSET 2208988800.0

typedef struct {
    PyObject_HEAD
    uint32_t ssrc;
    int pt, video, vp8, abs_id, level_id; /* ids -1: not negotiated (never 0: ID 0 is padding) */
    PyObject *receiver, *source, *stats, *nack, *on_level, *estimator, *on_remb, *on_active, *on_nack;
    PyObject *checked; /* the source's last outputs tuple found to hold only Outputs (checked once, not per packet) */
    long long active_at;
    unsigned long long packets, frames, bytes;
} Stream;

typedef struct {
    PyObject_HEAD
    PyObject *dtls, *connected, *session, *vars, *k_bytes, *k_packets, *plain; /* dtls NULL: no __init__ yet */
    void *ctx;
    srtp_fn unprotect;
    int n_streams;
    Stream *streams[MAX_STREAMS];
    unsigned long long packets, handed_back, rejected, oversized;
    long long rx_bytes, rx_packets; /* taken this wakeup, added to the transport's counters when it ends */
    int reading; /* in read_ready: a callback that calls it again on this demux gets nothing read */
    /* this demux's datagram, in place while its callbacks run: one byte more than the longest taken, so a
     * longer one shows itself even where MSG_TRUNC is not honoured */
    uint8_t buf[MAX_PACKET + 1];
} Demux;

static PyObject *s_state, *s_enabled, *s_fast, *s_sinks, *s_conn_lost, *s_datagram_received, *s_error_received,
    *s_request_keyframe, *s_on_keyframe_header, *s_rx_srtp;

/* a negotiated extension id (1..255; an element's ID 0 is padding), or -1: none */
static int extension_id(PyObject *v, int *id) {
    *id = -1;
    if (v == Py_None) return 0;
    int overflow;
    long x = PyLong_AsLongAndOverflow(v, &overflow);
    if (x == -1 && PyErr_Occurred()) return -1;
    if (!overflow && x >= 1 && x <= 255) *id = (int)x;
    return 0;
}

/* -- Stream ------------------------------------------------------------------------------------ */
/* Keyword arguments only (fifteen of them: one in the wrong place would be a wrong stream, not an error).
 * PyArg_ParseTupleAndKeywords has no required keyword-only form before 3.13, hence the check. */
static int Stream_init(Stream *self, PyObject *args, PyObject *kwds) {
    if (PyTuple_GET_SIZE(args) != 0) {
        PyErr_SetString(PyExc_TypeError, "Stream() takes keyword arguments only");
        return -1;
    }
    static char *kwlist[] = {"ssrc", "payload_type", "video", "vp8", "abs_send_time_id", "audio_level_id", "receiver",
                             "source", "stats", "nack", "on_level", "estimator", "on_remb", "on_active", "on_nack", NULL};
    unsigned long ssrc;
    PyObject *abs_id, *level_id, *receiver, *source, *stats, *nack, *on_level, *estimator, *on_remb, *on_active,
        *on_nack;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "kippOOOOO!OOOOOO", kwlist, &ssrc, &self->pt, &self->video,
                                     &self->vp8, &abs_id, &level_id, &receiver, &source, &NativeStatsType, &stats,
                                     &nack, &on_level, &estimator, &on_remb, &on_active, &on_nack))
        return -1;
    if (estimator != Py_None && !PyObject_TypeCheck(estimator, &NativeEstimatorType)) {
        PyErr_SetString(PyExc_TypeError, "estimator must be a media.native.RemoteBitrateEstimator or None");
        return -1;
    }
    if (nack != Py_None && !PyObject_TypeCheck(nack, &NativeNackType)) {
        PyErr_SetString(PyExc_TypeError, "nack must be a media.native.NackGenerator or None");
        return -1;
    }
    self->ssrc = (uint32_t)ssrc;
    if (extension_id(abs_id, &self->abs_id) < 0 || extension_id(level_id, &self->level_id) < 0) return -1;
    Py_XSETREF(self->receiver, Py_NewRef(receiver));
    Py_XSETREF(self->source, Py_NewRef(source));
    Py_XSETREF(self->stats, Py_NewRef(stats));
    Py_XSETREF(self->nack, Py_NewRef(nack));
    Py_XSETREF(self->on_level, Py_NewRef(on_level));
    Py_XSETREF(self->estimator, Py_NewRef(estimator));
    Py_XSETREF(self->on_remb, Py_NewRef(on_remb));
    Py_XSETREF(self->on_active, Py_NewRef(on_active));
    Py_XSETREF(self->on_nack, Py_NewRef(on_nack));
    return 0;
}

static int Stream_traverse(Stream *self, visitproc visit, void *arg) {
    Py_VISIT(self->receiver); Py_VISIT(self->source); Py_VISIT(self->stats); Py_VISIT(self->nack);
    Py_VISIT(self->on_level); Py_VISIT(self->estimator); Py_VISIT(self->on_remb); Py_VISIT(self->on_active);
    Py_VISIT(self->on_nack); Py_VISIT(self->checked);
    return 0;
}

static int Stream_clear(Stream *self) {
    Py_CLEAR(self->receiver); Py_CLEAR(self->source); Py_CLEAR(self->stats); Py_CLEAR(self->nack);
    Py_CLEAR(self->on_level); Py_CLEAR(self->estimator); Py_CLEAR(self->on_remb); Py_CLEAR(self->on_active);
    Py_CLEAR(self->on_nack); Py_CLEAR(self->checked);
    return 0;
}

static void Stream_dealloc(Stream *self) {
    PyObject_GC_UnTrack(self);
    Stream_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

#define STREAM_COUNTER(name) \
    static PyObject *Stream_get_##name(Stream *s, void *c) { return PyLong_FromUnsignedLongLong(s->name); }
STREAM_COUNTER(packets)
STREAM_COUNTER(frames)
STREAM_COUNTER(bytes)
static PyObject *Stream_get_ssrc(Stream *s, void *c) { return PyLong_FromUnsignedLong(s->ssrc); }

static PyGetSetDef Stream_getset[] = {
    {"packets", (getter)Stream_get_packets, NULL, "packets taken on the native path", NULL},
    {"frames", (getter)Stream_get_frames, NULL, "frames counted from them (as Source.on_packet counts)", NULL},
    {"bytes", (getter)Stream_get_bytes, NULL, "their payload octets, VP8 descriptors left out", NULL},
    {"ssrc", (getter)Stream_get_ssrc, NULL, NULL, NULL},
    {NULL}};

PyTypeObject NativeStreamType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "media.native.Stream",
    .tp_doc = "Stream(*, ssrc, payload_type, video, vp8, abs_send_time_id, audio_level_id, receiver, source, stats, "
              "nack, on_level, estimator, on_remb, on_active, on_nack)\n--\n\n"
              "One incoming media SSRC the native path takes (media/native.pyi).",
    .tp_basicsize = sizeof(Stream),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Stream_init,
    .tp_dealloc = (destructor)Stream_dealloc,
    .tp_traverse = (traverseproc)Stream_traverse,
    .tp_clear = (inquiry)Stream_clear,
    .tp_getset = Stream_getset,
};

/* -- Demux ------------------------------------------------------------------------------------- */
/* route, media/native_routes.py's ReceiveRoute (its fields are RECEIVE_ROUTE, in this order): (dtls, CONNECTED,
 * rx SRTP session, srtp_t address, srtp_unprotect address, dtls vars, (rx bytes key, rx packets key));
 * plain(data, arrival_ms): a plaintext RTP packet for Python */
static const char *const receive_route_fields[] = {"dtls", "connected", "session", "srtp", "unprotect", "dtls_vars",
                                                   "counter_keys", NULL};

static int Demux_init(Demux *self, PyObject *args, PyObject *kwds) {
    PyObject *dtls, *connected, *session, *vars, *keys, *plain;
    unsigned long long ctx, fn;
    if (!PyArg_ParseTuple(args, "(OOOKKO!O!)O", &dtls, &connected, &session, &ctx, &fn, &PyDict_Type, &vars,
                          &PyTuple_Type, &keys, &plain))
        return -1;
    if (PyTuple_GET_SIZE(keys) != 2) {
        PyErr_SetString(PyExc_ValueError, "two counter keys");
        return -1;
    }
    if (!ctx || !fn) {
        PyErr_SetString(PyExc_ValueError, "no SRTP session");
        return -1;
    }
    /* the new session's first (it is alive: the arguments hold it), then the objects: dropping the old
     * ones may run Python */
    self->ctx = (void *)(uintptr_t)ctx;
    self->unprotect = (srtp_fn)(uintptr_t)fn;
    Py_XSETREF(self->dtls, Py_NewRef(dtls));
    Py_XSETREF(self->connected, Py_NewRef(connected));
    Py_XSETREF(self->session, Py_NewRef(session));
    Py_XSETREF(self->vars, Py_NewRef(vars));
    Py_XSETREF(self->k_bytes, Py_NewRef(PyTuple_GET_ITEM(keys, 0)));
    Py_XSETREF(self->k_packets, Py_NewRef(PyTuple_GET_ITEM(keys, 1)));
    Py_XSETREF(self->plain, Py_NewRef(plain));
    return 0;
}

static int Demux_traverse(Demux *self, visitproc visit, void *arg) {
    Py_VISIT(self->dtls); Py_VISIT(self->connected); Py_VISIT(self->session); Py_VISIT(self->vars);
    Py_VISIT(self->k_bytes); Py_VISIT(self->k_packets); Py_VISIT(self->plain);
    for (int i = 0; i < self->n_streams; i++) Py_VISIT(self->streams[i]);
    return 0;
}

static int Demux_clear(Demux *self) {
    Py_CLEAR(self->dtls); Py_CLEAR(self->connected); Py_CLEAR(self->session); Py_CLEAR(self->vars);
    Py_CLEAR(self->k_bytes); Py_CLEAR(self->k_packets); Py_CLEAR(self->plain);
    self->ctx = NULL;
    self->unprotect = NULL;
    int n = self->n_streams;
    self->n_streams = 0; /* the table is empty before a stream's destructor can look at it */
    for (int i = 0; i < n; i++) Py_CLEAR(self->streams[i]);
    return 0;
}

static void Demux_dealloc(Demux *self) {
    PyObject_GC_UnTrack(self);
    Demux_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int demux_not_ready(Demux *d) {
    if (d->dtls != NULL) return 0;
    PyErr_SetString(PyExc_ValueError, "Demux.__init__ was not called");
    return 1;
}

static PyObject *Demux_add(Demux *self, PyObject *stream) {
    if (demux_not_ready(self)) return NULL;
    if (!PyObject_TypeCheck(stream, &NativeStreamType)) {
        PyErr_SetString(PyExc_TypeError, "a media.native.Stream");
        return NULL;
    }
    Stream *st = (Stream *)stream;
    if (st->receiver == NULL) {
        PyErr_SetString(PyExc_ValueError, "Stream.__init__ was not called");
        return NULL;
    }
    for (int i = 0; i < self->n_streams; i++)
        if (self->streams[i]->ssrc == st->ssrc) {
            Py_SETREF(self->streams[i], (Stream *)Py_NewRef(stream)); /* the same SSRC, a new receiver: replaced */
            Py_RETURN_TRUE;
        }
    if (self->n_streams == MAX_STREAMS) Py_RETURN_FALSE; /* the rest stay on the Python path */
    self->streams[self->n_streams++] = (Stream *)Py_NewRef(stream);
    Py_RETURN_TRUE;
}

static Stream *find(Demux *d, uint32_t ssrc) {
    for (int i = 0; i < d->n_streams; i++)
        if (d->streams[i]->ssrc == ssrc) return d->streams[i];
    return NULL;
}

/* a new reference to an attribute of an object held meanwhile (a getter may drop the holder's reference) */
static PyObject *held_attr(PyObject *o, PyObject *name) {
    Py_INCREF(o);
    PyObject *v = PyObject_GetAttr(o, name);
    Py_DECREF(o);
    return v;
}

/* 1: the stream's packets take the native path now (connected, receiver enabled, the source's outputs
 * all native and nobody taking frames): *fast is its outputs (a new reference: a callback may replace
 * the source's tuple while the packet is handled); 0: Python's; -1: error */
static int eligible(Demux *d, Stream *st, PyObject **fast) {
    PyObject *connected = Py_NewRef(d->connected), *session = Py_NewRef(d->session);
    PyObject *v = held_attr(d->dtls, s_state);
    int rc = -1;
    if (v == NULL) goto done;
    Py_DECREF(v);
    if (v != connected) {
        rc = 0;
        goto done;
    }
    v = held_attr(d->dtls, s_rx_srtp);
    if (v == NULL) goto done;
    Py_DECREF(v);
    if (v != session) { /* re-keyed: Python's path */
        rc = 0;
        goto done;
    }
    v = held_attr(st->receiver, s_enabled);
    if (v == NULL) goto done;
    int enabled = PyObject_IsTrue(v);
    Py_DECREF(v);
    if (enabled <= 0) {
        rc = enabled;
        goto done;
    }
    v = held_attr(st->source, s_sinks);
    if (v == NULL) goto done;
    Py_ssize_t sinks = PyObject_Length(v);
    Py_DECREF(v);
    if (sinks != 0) {
        rc = sinks < 0 ? -1 : 0;
        goto done;
    }
    v = held_attr(st->source, s_fast);
    if (v == NULL) goto done;
    if (v != st->checked) { /* a new tuple (the subscribers changed): is it all Outputs? */
        if (!native_is_outputs(v)) {
            Py_DECREF(v);
            rc = 0;
            goto done;
        }
        Py_XSETREF(st->checked, Py_NewRef(v));
    }
    *fast = v;
    rc = 1;
done:
    Py_DECREF(connected);
    Py_DECREF(session);
    return rc;
}

static int call_ok(PyObject *r) {
    if (r == NULL) return -1;
    Py_DECREF(r);
    return 0;
}

/* call a callable held meanwhile (a callback may replace the attribute it came from) */
static PyObject *held_call(PyObject *f, const char *format, ...) {
    va_list va;
    va_start(va, format);
    PyObject *args = Py_VaBuildValue(format, va);
    va_end(va);
    if (args == NULL) return NULL;
    Py_INCREF(f);
    PyObject *r = PyObject_CallObject(f, args);
    Py_DECREF(f);
    Py_DECREF(args);
    return r;
}

/* RFC 3550 §5.1 and RFC 8285: the header of a plaintext RTP packet; -1 if malformed. As
 * rtp_input.parse_header: ids < 1 match nothing (ID 0 is padding); a one-byte element with ID 0 and a
 * length ends the block, as ID 15 does. */
static int parse(const uint8_t *p, Py_ssize_t n, int abs_id, int level_id, Py_ssize_t *start, Py_ssize_t *end,
                 long *abs_time, int *level) {
    *abs_time = -1;
    *level = -1;
    if (n < 12 || (p[0] >> 6) != 2) return -1;
    Py_ssize_t pos = 12 + 4 * (p[0] & 0x0F);
    if (p[0] & 0x10) {
        if (pos + 4 > n) return -1;
        int profile = (p[pos] << 8) | p[pos + 1], words = (p[pos + 2] << 8) | p[pos + 3];
        pos += 4;
        Py_ssize_t ext_end = pos + 4 * (Py_ssize_t)words;
        if (ext_end > n) return -1;
        int head = profile == 0xBEDE ? 1 : (profile & 0xFFF0) == 0x1000 ? 2 : 0;
        Py_ssize_t i = pos;
        while (head && i + head - 1 < ext_end) { /* the element's header is inside the block */
            int b = p[i], id, len;
            if (b == 0) { /* padding between elements (RFC 8285 §4.1) */
                i++;
                continue;
            }
            if (head == 1) {
                id = b >> 4;
                len = (b & 0x0F) + 1;
                if (id == 0 || id == 15) break; /* 15 reserved, 0 padding claiming a length: stop (as libwebrtc) */
            } else {
                id = b;
                len = p[i + 1];
            }
            Py_ssize_t value = i + head;
            if (value + len > ext_end) break;
            if (id == abs_id && len == 3)
                *abs_time = (p[value] << 16) | (p[value + 1] << 8) | p[value + 2];
            else if (id == level_id && len >= 1)
                *level = p[value] & 0x7F;
            i = value + len;
        }
        pos = ext_end;
    }
    Py_ssize_t e = n;
    if (p[0] & 0x20) {
        int pad = p[n - 1];
        if (pad == 0 || pos + pad > n) return -1;
        e = n - pad;
    }
    if (pos > e) return -1;
    *start = pos;
    *end = e;
    return 0;
}

/* parse_header(data, abs_send_time_id, audio_level_id): as media.rtp_input.parse_header, for the tests
 * that hold one against the other */
PyObject *native_parse_header_py(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs < 2 || nargs > 3) {
        PyErr_SetString(PyExc_TypeError, "parse_header(data, abs_send_time_id, audio_level_id=None)");
        return NULL;
    }
    int abs_id, level_id = -1;
    if (extension_id(args[1], &abs_id) < 0 || (nargs == 3 && extension_id(args[2], &level_id) < 0)) return NULL;
    Py_buffer b;
    if (PyObject_GetBuffer(args[0], &b, PyBUF_SIMPLE) < 0) return NULL;
    const uint8_t *p = b.buf;
    Py_ssize_t start, end;
    long abs_time;
    int level;
    PyObject *r;
    if (parse(p, b.len, abs_id, level_id, &start, &end, &abs_time, &level) < 0) {
        r = Py_NewRef(Py_None);
    } else {
        PyObject *a = abs_time >= 0 ? PyLong_FromLong(abs_time) : Py_NewRef(Py_None);
        PyObject *l = level >= 0 ? PyLong_FromLong(level) : Py_NewRef(Py_None);
        unsigned long ts = ((unsigned long)p[4] << 24) | ((unsigned long)p[5] << 16) | ((unsigned long)p[6] << 8) | p[7];
        unsigned long ssrc = ((unsigned long)p[8] << 24) | ((unsigned long)p[9] << 16) | ((unsigned long)p[10] << 8) | p[11];
        r = a && l ? Py_BuildValue("(iOHkknnOO)", p[1] & 0x7F, (p[1] & 0x80) ? Py_True : Py_False,
                                   (unsigned short)((p[2] << 8) | p[3]), ts, ssrc, start, end, a, l)
                   : NULL;
        Py_XDECREF(a);
        Py_XDECREF(l);
    }
    PyBuffer_Release(&b);
    return r;
}

/* One SRTP datagram of a registered stream, in d->buf, on the native path. 0, or -1 with a Python error. */
static int take(Demux *d, Stream *st, PyObject *fast, int n) {
    uint8_t *buf = d->buf;
    d->rx_bytes += n;
    d->rx_packets++;
    int len = n;
    if (d->unprotect(d->ctx, buf, &len) != 0 || len < 0 || len > n) {
        d->rejected++; /* as aiortc: a datagram that does not authenticate is dropped */
        return 0;
    }
    long long arrival_ms = (long long)((native_realtime() + NTP_UNIX_OFFSET) * 1000); /* aiortc_hooks._fast_ms */
    Py_ssize_t start, end;
    int level;
    long abs_time;
    if (parse(buf, len, st->abs_id, st->level_id, &start, &end, &abs_time, &level) < 0) return 0; /* aiortc drops it */
    if ((buf[1] & 0x7F) != st->pt) { /* RTX or another codec: Python's path, already unprotected */
        PyObject *data = PyBytes_FromStringAndSize((const char *)buf, len);
        PyObject *r = data ? held_call(d->plain, "(OL)", data, arrival_ms) : NULL;
        Py_XDECREF(data);
        d->handed_back++;
        return call_ok(r);
    }
    int marker = buf[1] >> 7, seq = (buf[2] << 8) | buf[3];
    uint32_t ts = ((uint32_t)buf[4] << 24) | ((uint32_t)buf[5] << 16) | ((uint32_t)buf[6] << 8) | buf[7];
    if (level >= 0 && st->on_level != Py_None && call_ok(held_call(st->on_level, "(i)", level)) < 0) return -1;
    if (abs_time >= 0 && st->estimator != Py_None) {
        long long remb = native_estimate(st->estimator, arrival_ms, (uint32_t)abs_time, len - start, st->ssrc);
        if (remb >= 0) { /* the estimate changed: Python sends the REMB */
            PyObject *ssrcs = native_estimate_ssrcs(st->estimator);
            PyObject *r = ssrcs ? held_call(st->on_remb, "(LO)", remb, ssrcs) : NULL;
            Py_XDECREF(ssrcs);
            if (call_ok(r) < 0) return -1;
        }
    }
    if (!st->active_at || arrival_ms - st->active_at >= ACTIVE_MS) {
        st->active_at = arrival_ms;
        if (call_ok(held_call(st->on_active, "(k)", (unsigned long)st->ssrc)) < 0) return -1;
    }
    native_stats_add(st->stats, seq, ts);
    if (st->nack != Py_None && native_nack_add(st->nack, seq) &&
        call_ok(held_call(st->on_nack, "(k)", (unsigned long)st->ssrc)) < 0)
        return -1;
    st->packets++;
    d->packets++;
    const uint8_t *payload = buf + start;
    Py_ssize_t plen = end - start;
    if (st->video && st->vp8) { /* what operators see of the camera, as Source.on_packet counts it */
        Py_ssize_t pic_at, skip;
        int key;
        skip = native_vp8_descriptor(payload, plen, &pic_at, &key); /* at most plen */
        st->bytes += plen - skip;
        if (marker) st->frames++;
        if (key) {
            PyObject *head = PyBytes_FromStringAndSize((const char *)payload + skip, plen - skip < 10 ? plen - skip : 10);
            PyObject *r = head ? PyObject_CallMethodObjArgs(st->source, s_on_keyframe_header, head, NULL) : NULL;
            Py_XDECREF(head);
            if (call_ok(r) < 0) return -1;
        }
    } else {
        st->bytes += plen;
        if (!st->video || marker) st->frames++;
    }
    PyObject *waiting = NULL;
    int rc = native_fan_out(fast, seq, ts, marker, payload, plen, level, &waiting);
    if (rc < 0) {
        Py_XDECREF(waiting);
        return -1;
    }
    if (waiting != NULL) { /* an output still waits for a key frame, and its last request is old */
        Py_DECREF(waiting);
        return call_ok(PyObject_CallMethodObjArgs(st->source, s_request_keyframe, NULL));
    }
    return 0;
}

static PyObject *address(const struct sockaddr_storage *sa, socklen_t sa_len) { /* as socket.recvfrom gives it */
    char host[INET6_ADDRSTRLEN];
    if (sa->ss_family == AF_INET6 && sa_len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
        if (inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host) == NULL) return Py_NewRef(Py_None);
        return Py_BuildValue("(sikk)", host, ntohs(a->sin6_port), (unsigned long)ntohl(a->sin6_flowinfo),
                             (unsigned long)a->sin6_scope_id);
    }
    if (sa->ss_family == AF_INET && sa_len >= (socklen_t)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
        if (inet_ntop(AF_INET, &a->sin_addr, host, sizeof host) == NULL) return Py_NewRef(Py_None);
        return Py_BuildValue("(si)", host, ntohs(a->sin_port));
    }
    return Py_NewRef(Py_None); /* another family (a test's socket pair): no address */
}

/* The socket's reader (loop._add_reader(fd, demux.read_ready, fd, transport, protocol)): every waiting
 * datagram, up to READS_PER_WAKEUP; then what it took is added to the transport's counters. */
static PyObject *read_all(Demux *self, PyObject *const *args, Py_ssize_t nargs);

static PyObject *Demux_read_ready(Demux *self, PyObject *const *args, Py_ssize_t nargs) {
    if (demux_not_ready(self)) return NULL;
    if (self->reading) Py_RETURN_NONE; /* called again from one of its own callbacks: the next wakeup reads */
    Py_INCREF(self);
    self->reading = 1;
    PyObject *r = read_all(self, args, nargs), *type, *value, *tb;
    self->reading = 0;
    long long bytes = self->rx_bytes, packets = self->rx_packets;
    self->rx_bytes = self->rx_packets = 0;
    if (packets && self->vars != NULL) {
        PyErr_Fetch(&type, &value, &tb); /* counted even when a handler raised */
        PyObject *vars = Py_NewRef(self->vars), *k_bytes = Py_NewRef(self->k_bytes),
                 *k_packets = Py_NewRef(self->k_packets);
        int err = native_add_to(vars, k_bytes, bytes) < 0 || native_add_to(vars, k_packets, packets) < 0;
        Py_DECREF(vars); Py_DECREF(k_bytes); Py_DECREF(k_packets);
        if (err) {
            Py_XDECREF(type); Py_XDECREF(value); Py_XDECREF(tb);
            Py_CLEAR(r);
        } else {
            PyErr_Restore(type, value, tb);
        }
    }
    Py_DECREF(self);
    return r;
}

static PyObject *read_all(Demux *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "read_ready(fd, transport, protocol)");
        return NULL;
    }
    int overflow;
    long fd_l = PyLong_AsLongAndOverflow(args[0], &overflow);
    if (fd_l == -1 && PyErr_Occurred()) return NULL;
    if (overflow || fd_l < 0 || fd_l > INT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "read_ready: not a file descriptor");
        return NULL;
    }
    int fd = (int)fd_l;
    PyObject *transport = args[1], *protocol = args[2];
    PyObject *lost = PyObject_GetAttr(transport, s_conn_lost);
    if (lost == NULL) return NULL;
    int is_lost = PyObject_IsTrue(lost);
    Py_DECREF(lost);
    if (is_lost) return is_lost < 0 ? NULL : Py_NewRef(Py_None);
    uint8_t *buf = self->buf;
    for (int i = 0; i < READS_PER_WAKEUP; i++) {
        if (i) { /* a handler may have closed the transport (its fd may be another socket's by now) */
            lost = PyObject_GetAttr(transport, s_conn_lost);
            if (lost == NULL) return NULL;
            is_lost = PyObject_IsTrue(lost);
            Py_DECREF(lost);
            if (is_lost < 0) return NULL;
            if (is_lost) break;
        }
        struct sockaddr_storage sa;
        socklen_t sa_len = sizeof sa;
        memset(&sa, 0, sizeof sa);
        /* MSG_TRUNC: the datagram's own length, even when it is longer than the buffer; MSG_DONTWAIT: the
         * loop is never blocked, even by a socket left blocking */
        ssize_t n = recvfrom(fd, buf, sizeof self->buf, MSG_TRUNC | MSG_DONTWAIT, (struct sockaddr *)&sa, &sa_len);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) break;
            PyObject *type, *value, *tb;
            PyErr_SetFromErrno(PyExc_OSError);
            PyErr_Fetch(&type, &value, &tb);
            PyErr_NormalizeException(&type, &value, &tb);
            PyObject *r = value ? PyObject_CallMethodObjArgs(protocol, s_error_received, value, NULL) : NULL;
            Py_XDECREF(type); Py_XDECREF(value); Py_XDECREF(tb);
            if (r == NULL) return NULL;
            Py_DECREF(r);
            break;
        }
        if (n > MAX_PACKET) { /* longer than any packet a peer sends (and than pylibsrtp's buffer): dropped
                               * before unprotect, and not handed to Python */
            self->oversized++;
            continue;
        }
        uint8_t b0 = n ? buf[0] : 0, b1 = n > 1 ? buf[1] : 0;
        if (n >= 12 && b0 > 127 && b0 < 192 && !(b1 >= 192 && b1 <= 208)) { /* SRTP, not SRTCP */
            Stream *st = find(self, ((uint32_t)buf[8] << 24) | ((uint32_t)buf[9] << 16) | ((uint32_t)buf[10] << 8) | buf[11]);
            PyObject *fast = NULL;
            if (st != NULL) Py_INCREF(st); /* a callback may replace it in the table */
            int ok = st ? eligible(self, st, &fast) : 0;
            if (ok < 0) {
                Py_DECREF(st);
                return NULL;
            }
            if (ok) {
                int rc = self->unprotect != NULL ? take(self, st, fast, (int)n) : 0;
                Py_DECREF(st);
                Py_DECREF(fast);
                if (rc < 0) return NULL;
                continue;
            }
            Py_XDECREF(st);
        }
        self->handed_back++;
        PyObject *data = PyBytes_FromStringAndSize((const char *)buf, n), *addr = data ? address(&sa, sa_len) : NULL;
        PyObject *r = (data && addr) ? PyObject_CallMethodObjArgs(protocol, s_datagram_received, data, addr, NULL) : NULL;
        Py_XDECREF(data);
        Py_XDECREF(addr);
        if (r == NULL) return NULL;
        Py_DECREF(r);
    }
    Py_RETURN_NONE;
}

static PyObject *Demux_get_packets(Demux *d, void *c) { return PyLong_FromUnsignedLongLong(d->packets); }
static PyObject *Demux_get_handed_back(Demux *d, void *c) { return PyLong_FromUnsignedLongLong(d->handed_back); }
static PyObject *Demux_get_rejected(Demux *d, void *c) { return PyLong_FromUnsignedLongLong(d->rejected); }
static PyObject *Demux_get_oversized(Demux *d, void *c) { return PyLong_FromUnsignedLongLong(d->oversized); }
static PyObject *Demux_get_streams(Demux *d, void *c) {
    PyObject *t = PyTuple_New(d->n_streams);
    for (int i = 0; t && i < d->n_streams; i++) PyTuple_SET_ITEM(t, i, Py_NewRef(d->streams[i]));
    return t;
}

static PyGetSetDef Demux_getset[] = {
    {"packets", (getter)Demux_get_packets, NULL, "media packets taken on the native path", NULL},
    {"handed_back", (getter)Demux_get_handed_back, NULL, "datagrams handed to Python's path", NULL},
    {"rejected", (getter)Demux_get_rejected, NULL, "datagrams that did not authenticate", NULL},
    {"oversized", (getter)Demux_get_oversized, NULL, "datagrams longer than MAX_PACKET (1500 bytes), dropped unread",
     NULL},
    {"streams", (getter)Demux_get_streams, NULL, NULL, NULL},
    {NULL}};

static PyMethodDef Demux_methods[] = {
    {"add", (PyCFunction)Demux_add, METH_O,
     "add($self, stream, /)\n--\n\ntake a Stream's packets natively; False if the table is full"},
    {"read_ready", (PyCFunction)(void (*)(void))Demux_read_ready, METH_FASTCALL,
     "read_ready($self, fd, transport, protocol, /)\n--\n\nthe socket's reader"},
    {NULL}};

PyTypeObject NativeDemuxType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "media.native.Demux",
    .tp_doc = "Demux(route, plain, /)\n--\n\n"
              "A DTLS transport's incoming SRTP, read from its sockets (route: media.native_routes.ReceiveRoute).",
    .tp_basicsize = sizeof(Demux),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Demux_init,
    .tp_dealloc = (destructor)Demux_dealloc,
    .tp_traverse = (traverseproc)Demux_traverse,
    .tp_clear = (inquiry)Demux_clear,
    .tp_methods = Demux_methods,
    .tp_getset = Demux_getset,
};

int native_input_ready(void) {
#define INTERN(var, text) \
    if ((var = PyUnicode_InternFromString(text)) == NULL) return -1;
    INTERN(s_state, "_state")
    INTERN(s_enabled, "_enabled")
    INTERN(s_fast, "_fast")
    INTERN(s_sinks, "sinks")
    INTERN(s_conn_lost, "_conn_lost")
    INTERN(s_datagram_received, "datagram_received")
    INTERN(s_error_received, "error_received")
    INTERN(s_request_keyframe, "request_keyframe")
    INTERN(s_on_keyframe_header, "on_keyframe_header")
    INTERN(s_rx_srtp, "_rx_srtp")
#undef INTERN
    if (PyType_Ready(&NativeStreamType) < 0) return -1;
    return PyType_Ready(&NativeDemuxType);
}

int native_input_export(PyObject *m) {
    if (PyModule_AddIntConstant(m, "READS_PER_WAKEUP", READS_PER_WAKEUP) < 0) return -1;
    return native_export_names(m, "RECEIVE_ROUTE", receive_route_fields);
}

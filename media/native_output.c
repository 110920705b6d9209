/* An outgoing RTP stream in C: media/rtp_output.py's RtpOutput, plus SRTP protect and the send, so a
 * packet crosses the node's fan-out in one call instead of five Python frames per receiver.
 *
 * `Output` is RtpOutput, byte for byte (tests/media/test_rtp_output.py runs against both, and a
 * differential test feeds both the same packets). `native_fan_out()` forwards one source packet to every
 * output: header rewrite, header extensions, NACK history, libsrtp's srtp_protect (the session aiortc's
 * DTLS transport keyed: its address comes from pylibsrtp) and sendto() on the ICE pair's socket, plus
 * the counters aiortc's sender reports (RTCP SR) and the node's own (frames, freezes). Where the route
 * is not plain (not yet connected, or a test wrapping the transport to inject loss) it goes through
 * Python: the router (media/aiortc_hooks.py: native_route) says which.
 */
#include "native.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* media/rtp_output.py's and media/forwarding.py's too: exported (native_output_export) and compared */
#define HISTORY 256
#define REORDER 1000
#define VIDEO_STEP 3000
#define AUDIO_STEP 960
#define KEYFRAME_RETRY_S 0.5
#define FREEZE_S 0.2
#define NTP_UNIX_OFFSET 2208988800ULL

typedef struct {
    uint8_t *data;
    int len; /* 0: empty */
    int cap;
} Slot;

typedef struct {
    PyObject_HEAD
    int ready; /* __init__ succeeded: an object made by tp_new alone refuses every method */
    PyObject *kind, *negotiated;
    int video;
    uint32_t ssrc, rtx_ssrc;
    int pt, rtx_pt; /* rtx_pt < 0: no RTX */
    int need_keyframe, rebase;
    double asked_at;
    int64_t seq_shift, ts_shift, pic_shift;
    int base_seq;
    int has_last_seq, has_last_ts, has_last_pic;
    int last_seq, last_pic;
    uint32_t last_ts;
    Slot history[HISTORY];
    unsigned long long packets, octets, frames, retransmitted;
    int rtx_seq;
    /* extension blocks per (has send time, has level): start bytes and padding */
    uint8_t block[4][24];
    int block_len[4], block_pad[4];
    uint32_t abs_word, level_word; /* 0: not negotiated */
    /* what the node reports: packets sent on the RTP path */
    unsigned long long fwd_bytes, fwd_frames, freezes, dropped, skipped, send_errors;
    int skipping;     /* the kernel had no room for a packet of this video frame: the rest is not sent */
    uint32_t skip_ts; /* that frame's timestamp, as sent */
    double last_frame_at; /* < 0: none since the last switch */
    /* the route (media/aiortc_hooks.py: DirectSend.route) */
    PyObject *router;                 /* () -> route tuple or None */
    PyObject *dtls, *connected, *proto, *transport, *session, *sender_vars, *addr_obj, *keys;
    int fd; /* the route's own dup() of the socket, closed with the route: never another connection's descriptor */
    struct sockaddr_storage addr;
    int addr_len; /* 0: a connected socket; -1: sent through Python's transport */
    void *srtp_ctx;
    srtp_fn protect;
    unsigned long route_gen; /* changes whenever the route is taken or cleared */
    uint32_t sr_rtp_ts;
    int has_sr_ts;
} Output;

static PyObject *str_state, *str_transport, *str_tx_srtp, *str_sendto, *str_closing;

static double monotonic_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec / 1e9;
}

double native_realtime(void) {
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (double)t.tv_sec + t.tv_nsec / 1e9;
}

static uint32_t abs_send_time_now(void) { return (uint32_t)((uint64_t)(native_realtime() * 262144.0) & 0xFFFFFF); }

static unsigned long long ntp_now(void) { /* as aiortc_hooks._fast_ntp_time */
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    unsigned long long micros = (unsigned long long)t.tv_nsec / 1000;
    return (((unsigned long long)t.tv_sec + NTP_UNIX_OFFSET) << 32) | ((micros << 32) / 1000000ULL);
}

/* RFC 7741 §4.2: the descriptor's length (at most the payload's), the picture ID's offset or -1 (both its
 * bytes present), whether it starts a key frame. As rtp_output.vp8_descriptor. */
Py_ssize_t native_vp8_descriptor(const uint8_t *p, Py_ssize_t n, Py_ssize_t *pic_at, int *key) {
    *pic_at = -1;
    *key = 0;
    if (n < 1) return 0;
    uint8_t b0 = p[0];
    Py_ssize_t i = 1;
    if (b0 & 0x80) {
        if (n < 2) return n;
        uint8_t ext = p[1];
        i = 2;
        if (ext & 0x80) {
            if (i < n && (p[i] & 0x80)) {
                if (i + 1 < n) *pic_at = i; /* a 15-bit picture ID cut short is none */
                i += 2;
            } else {
                i += 1;
            }
        }
        if (ext & 0x40) i += 1;
        if (ext & 0x30) i += 1;
    }
    int start = (b0 & 0x10) && (b0 & 0x0F) == 0;
    *key = start && i < n && (p[i] & 0x01) == 0;
    return i < n ? i : n; /* a descriptor longer than the payload: all of it is descriptor */
}

PyObject *native_vp8_descriptor_py(PyObject *module, PyObject *arg) {
    Py_buffer b;
    if (PyObject_GetBuffer(arg, &b, PyBUF_SIMPLE) < 0) return NULL;
    Py_ssize_t pic_at;
    int key;
    Py_ssize_t len = native_vp8_descriptor(b.buf, b.len, &pic_at, &key);
    PyBuffer_Release(&b);
    if (pic_at < 0) return Py_BuildValue("(nOO)", len, Py_None, key ? Py_True : Py_False);
    return Py_BuildValue("(nnO)", len, pic_at, key ? Py_True : Py_False);
}

static int one_byte_id(PyObject *v) { /* 1..14, or 0: none (15 is reserved, larger need two bytes); -1: error */
    if (v == NULL || v == Py_None) return 0;
    int overflow;
    long id = PyLong_AsLongAndOverflow(v, &overflow);
    if (id == -1 && PyErr_Occurred()) return -1;
    return (!overflow && id >= 1 && id <= 14) ? (int)id : 0;
}

static int not_ready(Output *o) {
    if (o->ready) return 0;
    PyErr_SetString(PyExc_ValueError, "Output.__init__ was not called");
    return 1;
}

static PyObject *get_attr(PyObject *o, const char *name) { /* new reference, or NULL with an error */
    return PyObject_GetAttrString(o, name);
}

static int Output_init(Output *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"kind", "negotiated", NULL};
    PyObject *kind, *n;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "UO", kwlist, &kind, &n)) return -1;
    self->ready = 0;
    Py_INCREF(kind);
    Py_XSETREF(self->kind, kind);
    Py_INCREF(n);
    Py_XSETREF(self->negotiated, n);
    self->video = PyUnicode_CompareWithASCIIString(kind, "video") == 0;
    PyObject *ssrc = get_attr(n, "ssrc"), *pt = get_attr(n, "payload_type"), *rtx_pt = get_attr(n, "rtx_payload_type"),
             *rtx_ssrc = get_attr(n, "rtx_ssrc"), *mid = get_attr(n, "mid"), *mid_id = get_attr(n, "mid_id"),
             *abs_id = get_attr(n, "abs_send_time_id"), *level_id = get_attr(n, "audio_level_id");
    int ok = ssrc && pt && rtx_pt && rtx_ssrc && mid && mid_id && abs_id && level_id;
    /* each conversion only if the one before it succeeded: no C-API call with an exception pending */
    unsigned long ssrc_v = 0, rtx_ssrc_v = 0, pt_v = 0, rtx_pt_v = 0;
    int mid_one = 0, abs_one = 0, level_one = 0;
    const char *mid_s = "";
    Py_ssize_t mid_len = 0;
    if (ok && ((ssrc_v = PyLong_AsUnsignedLongMask(ssrc)) == (unsigned long)-1 && PyErr_Occurred())) ok = 0;
    if (ok && ((pt_v = PyLong_AsUnsignedLongMask(pt)) == (unsigned long)-1 && PyErr_Occurred())) ok = 0;
    if (ok && rtx_pt != Py_None && rtx_ssrc != Py_None) {
        if ((rtx_pt_v = PyLong_AsUnsignedLongMask(rtx_pt)) == (unsigned long)-1 && PyErr_Occurred()) ok = 0;
        if (ok && (rtx_ssrc_v = PyLong_AsUnsignedLongMask(rtx_ssrc)) == (unsigned long)-1 && PyErr_Occurred()) ok = 0;
    }
    if (ok && ((mid_one = one_byte_id(mid_id)) < 0 || (abs_one = one_byte_id(abs_id)) < 0 ||
               (level_one = one_byte_id(level_id)) < 0))
        ok = 0;
    if (ok && mid != Py_None && (mid_s = PyUnicode_AsUTF8AndSize(mid, &mid_len)) == NULL) ok = 0;
    if (ok) {
        self->ssrc = (uint32_t)ssrc_v;
        self->pt = (int)(pt_v & 0x7F);
        self->rtx_pt = (rtx_pt == Py_None || rtx_ssrc == Py_None) ? -1 : (int)(rtx_pt_v & 0x7F);
        self->rtx_ssrc = rtx_pt == Py_None || rtx_ssrc == Py_None ? 0 : (uint32_t)rtx_ssrc_v;
        {
            uint8_t mid_el[17];
            int mid_el_len = 0;
            if (mid_one > 0 && mid_len >= 1 && mid_len <= 16) {
                mid_el[0] = (uint8_t)(mid_one << 4 | (mid_len - 1));
                memcpy(mid_el + 1, mid_s, mid_len);
                mid_el_len = 1 + (int)mid_len;
            }
            self->abs_word = abs_one > 0 ? ((uint32_t)(abs_one << 4 | 2) << 24) : 0;
            self->level_word = level_one > 0 ? ((uint32_t)level_one << 12) : 0;
            static const int sizes[4] = {0, 2, 4, 6}; /* after the MID: nothing, the level, the time, both */
            for (int i = 0; i < 4; i++) {
                int body = mid_el_len + sizes[i], words = (body + 3) / 4;
                if (!body) {
                    self->block_len[i] = self->block_pad[i] = 0;
                    continue;
                }
                self->block[i][0] = 0xBE;
                self->block[i][1] = 0xDE;
                self->block[i][2] = (uint8_t)(words >> 8);
                self->block[i][3] = (uint8_t)words;
                memcpy(self->block[i] + 4, mid_el, mid_el_len);
                self->block_len[i] = 4 + mid_el_len;
                self->block_pad[i] = 4 * words - body;
            }
        }
    }
    Py_XDECREF(ssrc); Py_XDECREF(pt); Py_XDECREF(rtx_pt); Py_XDECREF(rtx_ssrc);
    Py_XDECREF(mid); Py_XDECREF(mid_id); Py_XDECREF(abs_id); Py_XDECREF(level_id);
    if (!ok) return -1;
    self->need_keyframe = self->video;
    self->rebase = 1;
    self->last_frame_at = -1;
    self->ready = 1;
    return 0;
}

static PyObject *Output_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    Output *self = (Output *)PyType_GenericNew(type, args, kwds);
    if (self != NULL) self->fd = -1;
    return (PyObject *)self;
}

/* Forget the route (objects, the socket's dup, SRTP): the next packet asks the router again. */
static void clear_route(Output *self) {
    PyObject *dtls = self->dtls, *connected = self->connected, *proto = self->proto, *transport = self->transport,
             *session = self->session, *vars = self->sender_vars, *addr = self->addr_obj, *keys = self->keys;
    int fd = self->fd;
    /* the fields first, then the references: a destructor that runs Python finds no half-cleared route */
    self->dtls = self->connected = self->proto = self->transport = self->session = self->sender_vars = NULL;
    self->addr_obj = self->keys = NULL;
    self->fd = -1;
    self->addr_len = 0;
    self->srtp_ctx = NULL;
    self->protect = NULL;
    self->route_gen++;
    if (fd >= 0) close(fd);
    Py_XDECREF(dtls); Py_XDECREF(connected); Py_XDECREF(proto); Py_XDECREF(transport);
    Py_XDECREF(session); Py_XDECREF(vars); Py_XDECREF(addr); Py_XDECREF(keys);
}

static int Output_traverse(Output *self, visitproc visit, void *arg) {
    Py_VISIT(self->kind); Py_VISIT(self->negotiated); Py_VISIT(self->router); Py_VISIT(self->dtls);
    Py_VISIT(self->connected); Py_VISIT(self->proto); Py_VISIT(self->transport); Py_VISIT(self->session);
    Py_VISIT(self->sender_vars); Py_VISIT(self->addr_obj); Py_VISIT(self->keys);
    return 0;
}

static int Output_clear(Output *self) {
    clear_route(self);
    Py_CLEAR(self->kind); Py_CLEAR(self->negotiated); Py_CLEAR(self->router);
    return 0;
}

static void Output_dealloc(Output *self) {
    PyObject_GC_UnTrack(self);
    Output_clear(self);
    for (int i = 0; i < HISTORY; i++) PyMem_Free(self->history[i].data);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* The rewritten packet for a source packet, into its history slot; its length, 0 (not sent) or -1 (longer
 * than MAX_PACKET: nothing changed). As RtpOutput.packet. `sent` < 0 and `level` < 0 mean absent (else
 * 24 and 7 bits); `pic_at` < 0: no picture ID (nor one whose two bytes are not both in the payload). */
static int build(Output *o, int seq, uint32_t ts, int marker, const uint8_t *payload, Py_ssize_t plen,
                 Py_ssize_t pic_at, int key, long sent, int level, Slot **out) {
    int has_time = sent >= 0 && o->abs_word, has_level = level >= 0 && o->level_word;
    int b = 2 * has_time + has_level;
    int ext_len = o->block_len[b] ? o->block_len[b] + (has_time ? 4 : 0) + (has_level ? 2 : 0) + o->block_pad[b] : 0;
    if (plen < 0 || plen > MAX_PACKET - 12 - ext_len) return -1; /* before any state changes */
    int len = 12 + ext_len + (int)plen;
    if (o->video) {
        if (o->need_keyframe) {
            if (!key) return 0;
            o->need_keyframe = 0;
        }
    }
    if (pic_at < 0 || pic_at >= plen - 1) pic_at = -1;
    int pic = pic_at >= 0 ? ((payload[pic_at] & 0x7F) << 8) | payload[pic_at + 1] : 0;
    if (o->rebase) {
        o->rebase = 0;
        o->seq_shift = o->has_last_seq ? (int64_t)o->last_seq + 1 - seq : 0;
        int64_t step = o->video ? VIDEO_STEP : AUDIO_STEP;
        o->ts_shift = o->has_last_ts ? (int64_t)o->last_ts + step - (int64_t)ts : 0;
        o->base_seq = seq;
        if (pic_at >= 0) o->pic_shift = o->has_last_pic ? (int64_t)o->last_pic + 1 - pic : 0;
    } else {
        uint16_t d = (uint16_t)(seq - o->base_seq);
        if (d & 0x8000) return 0; /* from before the switch point */
        if (d > REORDER) o->base_seq = (seq - REORDER) & 0xFFFF;
    }
    int out_seq = (int)((uint64_t)(seq + o->seq_shift) & 0xFFFF);
    uint32_t out_ts = (uint32_t)((uint64_t)((int64_t)ts + o->ts_shift) & 0xFFFFFFFFULL);
    int new_pic = -1;
    if (pic_at >= 0) {
        new_pic = o->pic_shift ? (int)((uint64_t)(pic + o->pic_shift) & 0x7FFF) : pic;
        o->last_pic = new_pic;
        o->has_last_pic = 1;
        if (!o->pic_shift) new_pic = -1; /* unchanged: copied as it is */
    }
    if (!o->has_last_seq || !(((out_seq - o->last_seq) & 0xFFFF) & 0x8000)) {
        o->last_seq = out_seq;
        o->last_ts = out_ts;
        o->has_last_seq = o->has_last_ts = 1;
    }
    Slot *s = &o->history[out_seq % HISTORY];
    if (s->cap < len) {
        int cap = len < 256 ? 256 : MAX_PACKET;
        uint8_t *d = PyMem_Realloc(s->data, cap);
        if (d == NULL) { /* as a packet not sent: this slot keeps nothing */
            s->len = 0;
            return 0;
        }
        s->data = d;
        s->cap = cap;
    }
    uint8_t *p = s->data;
    p[0] = ext_len ? 0x90 : 0x80;
    p[1] = (uint8_t)(marker ? (o->pt | 0x80) : o->pt);
    p[2] = (uint8_t)(out_seq >> 8); p[3] = (uint8_t)out_seq;
    p[4] = (uint8_t)(out_ts >> 24); p[5] = (uint8_t)(out_ts >> 16); p[6] = (uint8_t)(out_ts >> 8); p[7] = (uint8_t)out_ts;
    p[8] = (uint8_t)(o->ssrc >> 24); p[9] = (uint8_t)(o->ssrc >> 16); p[10] = (uint8_t)(o->ssrc >> 8); p[11] = (uint8_t)o->ssrc;
    int i = 12;
    if (ext_len) {
        memcpy(p + i, o->block[b], o->block_len[b]);
        i += o->block_len[b];
        if (has_time) {
            uint32_t w = o->abs_word | ((uint32_t)sent & 0xFFFFFF);
            p[i] = (uint8_t)(w >> 24); p[i + 1] = (uint8_t)(w >> 16); p[i + 2] = (uint8_t)(w >> 8); p[i + 3] = (uint8_t)w;
            i += 4;
        }
        if (has_level) {
            uint32_t w = o->level_word | (level & 0x7F);
            p[i] = (uint8_t)(w >> 8); p[i + 1] = (uint8_t)w;
            i += 2;
        }
        memset(p + i, 0, o->block_pad[b]);
        i += o->block_pad[b];
    }
    memcpy(p + i, payload, (size_t)plen);
    if (new_pic >= 0) {
        p[i + pic_at] = (uint8_t)(0x80 | (new_pic >> 8));
        p[i + pic_at + 1] = (uint8_t)(new_pic & 0xFF);
    }
    s->len = len;
    o->packets++;
    o->octets += plen;
    if (marker && o->video) o->frames++;
    *out = s;
    return len;
}

/* None: -1 (absent); an int: its low `bits` bits, as Python's `v & mask` gives them for any int */
static int parse_optional_bits(PyObject *v, int bits, long *out) {
    if (v == NULL || v == Py_None) {
        *out = -1;
        return 0;
    }
    unsigned long m = PyLong_AsUnsignedLongMask(v);
    if (m == (unsigned long)-1 && PyErr_Occurred()) return -1;
    *out = (long)(m & ((1UL << bits) - 1));
    return 0;
}

static PyObject *Output_packet(Output *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"seq", "ts", "marker", "payload", "desc", "sent", "level", NULL};
    int seq, marker;
    unsigned long ts;
    Py_buffer payload;
    PyObject *desc = Py_None, *sent_o = Py_None, *level_o = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "ikpy*|OOO", kwlist, &seq, &ts, &marker, &payload, &desc, &sent_o,
                                     &level_o))
        return NULL;
    long sent, level;
    Py_ssize_t pic_at = -1;
    int key = 0;
    PyObject *result = NULL;
    if (not_ready(self) || parse_optional_bits(sent_o, 24, &sent) < 0 || parse_optional_bits(level_o, 7, &level) < 0)
        goto done;
    if (self->video) {
        if (desc != Py_None) {
            PyObject *pic = NULL, *k = NULL;
            if (!PyTuple_Check(desc) || !PyArg_ParseTuple(desc, "OO", &pic, &k)) {
                if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "desc: (picture ID offset or None, key)");
                goto done;
            }
            if (pic != Py_None) {
                int overflow;
                long long v = PyLong_AsLongLongAndOverflow(pic, &overflow);
                if (v == -1 && PyErr_Occurred()) goto done;
                pic_at = (overflow || v < 0 || v >= payload.len) ? -1 : (Py_ssize_t)v; /* out of the payload: none */
            }
            if ((key = PyObject_IsTrue(k)) < 0) goto done;
        } else {
            native_vp8_descriptor(payload.buf, payload.len, &pic_at, &key);
        }
    }
    Slot *s = NULL;
    int n = build(self, seq & 0xFFFF, (uint32_t)ts, marker, payload.buf, payload.len, pic_at, key, sent, (int)level,
                  &s);
    if (n < 0) {
        PyErr_SetString(PyExc_ValueError, "packet is too long");
        goto done;
    }
    result = n ? PyBytes_FromStringAndSize((const char *)s->data, n) : Py_NewRef(Py_None);
done:
    PyBuffer_Release(&payload);
    return result;
}

/* As RtpOutput.retransmission, into `buf` (MAX_PACKET + 2 bytes); its length or 0. */
static int retransmission(Output *o, int seq, uint8_t *buf) {
    Slot *s = &o->history[seq % HISTORY];
    if (!s->len || ((s->data[2] << 8) | s->data[3]) != seq) return 0;
    o->retransmitted++;
    const uint8_t *d = s->data;
    if (o->rtx_pt < 0) {
        memcpy(buf, d, s->len);
        return s->len;
    }
    o->rtx_seq = (o->rtx_seq + 1) & 0xFFFF;
    int end = 12 + ((d[0] & 0x10) ? 4 + 4 * ((d[14] << 8) | d[15]) : 0);
    if (end > s->len) end = s->len;
    buf[0] = d[0];
    buf[1] = (uint8_t)((d[1] & 0x80) | o->rtx_pt);
    buf[2] = (uint8_t)(o->rtx_seq >> 8); buf[3] = (uint8_t)o->rtx_seq;
    memcpy(buf + 4, d + 4, 4);
    buf[8] = (uint8_t)(o->rtx_ssrc >> 24); buf[9] = (uint8_t)(o->rtx_ssrc >> 16);
    buf[10] = (uint8_t)(o->rtx_ssrc >> 8); buf[11] = (uint8_t)o->rtx_ssrc;
    memcpy(buf + 12, d + 12, end - 12);
    buf[end] = d[2];
    buf[end + 1] = d[3];
    memcpy(buf + end + 2, d + end, s->len - end);
    return s->len + 2;
}

static PyObject *Output_retransmission(Output *self, PyObject *arg) {
    if (not_ready(self)) return NULL;
    long seq = PyLong_AsLong(arg);
    if (seq == -1 && PyErr_Occurred()) return NULL;
    uint8_t buf[MAX_PACKET + 2];
    int n = seq >= 0 && seq <= 0xFFFF ? retransmission(self, (int)seq, buf) : 0; /* others are never in it */
    return n ? PyBytes_FromStringAndSize((const char *)buf, n) : Py_NewRef(Py_None);
}

static PyObject *Output_switched(Output *self, PyObject *arg) {
    if (not_ready(self)) return NULL;
    double now = PyFloat_AsDouble(arg);
    if (now == -1.0 && PyErr_Occurred()) return NULL;
    self->rebase = 1;
    self->last_frame_at = -1; /* a switch starts the freeze count afresh */
    if (self->video) {
        self->need_keyframe = 1;
        self->asked_at = now;
    }
    Py_RETURN_NONE;
}

static int wants_keyframe(Output *o, double now) {
    if (o->need_keyframe && now - o->asked_at > KEYFRAME_RETRY_S) {
        o->asked_at = now;
        return 1;
    }
    return 0;
}

static PyObject *Output_wants_keyframe(Output *self, PyObject *arg) {
    if (not_ready(self)) return NULL;
    double now = PyFloat_AsDouble(arg);
    if (now == -1.0 && PyErr_Occurred()) return NULL;
    return PyBool_FromLong(wants_keyframe(self, now));
}

/* The route, media/native_routes.py's SendRoute (its fields are SEND_ROUTE, in this order): (dtls, CONNECTED,
 * protocol, its own transport, fd, family, (host, port), SRTP session object, srtp_t address, srtp_protect
 * address, sender vars, (packet count key, octets key, rtp ts key, ntp ts key)). The route keeps its own dup() of the socket: if asyncio closes the transport's socket and the number is
 * given to another connection, this route still holds the ICE socket, and is dropped at its next packet
 * (the transport is closing). */
static const char *const send_route_fields[] = {"dtls", "connected", "protocol", "transport", "fd", "family",
                                                "remote", "session", "srtp", "protect", "sender_vars",
                                                "counter_keys", NULL};

static int take_route(Output *o, PyObject *r) {
    PyObject *dtls, *connected, *proto, *transport, *addr, *session, *vars, *keys;
    int fd, family;
    unsigned long long ctx, fn;
    if (!PyTuple_Check(r)) {
        PyErr_SetString(PyExc_TypeError, "the router returns the route tuple or None");
        return -1;
    }
    if (!PyArg_ParseTuple(r, "OOOOiiOOKKO!O!", &dtls, &connected, &proto, &transport, &fd, &family, &addr, &session,
                          &ctx, &fn, &PyDict_Type, &vars, &PyTuple_Type, &keys))
        return -1;
    if (PyTuple_GET_SIZE(keys) != 4) {
        PyErr_SetString(PyExc_ValueError, "the route's counter keys: (packets, octets, rtp ts, ntp ts)");
        return -1;
    }
    if (!ctx || !fn) {
        PyErr_SetString(PyExc_ValueError, "the route has no SRTP session");
        return -1;
    }
    const char *host = "";
    int port;
    struct sockaddr_storage sa;
    int sa_len;
    memset(&sa, 0, sizeof sa);
    struct in_addr v4;
    if (addr == Py_None) { /* a connected socket (a test's socket pair): send() */
        sa_len = 0;
    } else if (!PyTuple_Check(addr) || !PyArg_ParseTuple(addr, "si", &host, &port)) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "the route's address: (host, port) or None");
        return -1;
    } else if (port < 0 || port > 0xFFFF) {
        PyErr_SetString(PyExc_ValueError, "the route's port");
        return -1;
    } else if (family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&sa;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        sa_len = sizeof(struct sockaddr_in6);
        if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1) {
            if (inet_pton(AF_INET, host, &v4) == 1) {
                a->sin6_addr.s6_addr[10] = a->sin6_addr.s6_addr[11] = 0xFF; /* ::ffff:a.b.c.d */
                memcpy(&a->sin6_addr.s6_addr[12], &v4, 4);
            } else { /* an address inet_pton does not read (an IPv6 one with a %scope): Python's sendto does */
                sa_len = -1;
            }
        }
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&sa;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        sa_len = inet_pton(AF_INET, host, &a->sin_addr) == 1 ? (int)sizeof(struct sockaddr_in) : -1;
    }
    int own = -1;
    if (sa_len >= 0) {
        if (fd < 0) {
            PyErr_SetString(PyExc_ValueError, "the route has no socket");
            return -1;
        }
        own = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (own < 0) sa_len = -1; /* no descriptor to spare: send through Python's transport */
    }
    clear_route(o);
    o->dtls = Py_NewRef(dtls); o->connected = Py_NewRef(connected); o->proto = Py_NewRef(proto);
    o->transport = Py_NewRef(transport); o->session = Py_NewRef(session); o->sender_vars = Py_NewRef(vars);
    o->addr_obj = Py_NewRef(addr); o->keys = Py_NewRef(keys);
    o->fd = own;
    memcpy(&o->addr, &sa, sizeof sa);
    o->addr_len = sa_len;
    o->srtp_ctx = (void *)(uintptr_t)ctx;
    o->protect = (srtp_fn)(uintptr_t)fn;
    return 0;
}

int native_add_to(PyObject *vars, PyObject *key, long long n) {
    PyObject *v = PyDict_GetItemWithError(vars, key);
    if (v == NULL) return PyErr_Occurred() ? -1 : 0;
    Py_INCREF(v); /* the dict's own reference may go while the key is compared */
    long long cur = PyLong_AsLongLong(v);
    Py_DECREF(v);
    if (cur == -1 && PyErr_Occurred()) return -1;
    PyObject *nv = PyLong_FromLongLong(cur + n);
    if (nv == NULL) return -1;
    int rc = PyDict_SetItem(vars, key, nv);
    Py_DECREF(nv);
    return rc;
}

/* 1: the object's attribute is true, 0: false, -1: error */
static int attr_true(PyObject *o, PyObject *name) {
    PyObject *v = PyObject_GetAttr(o, name);
    if (v == NULL) return -1;
    int t = PyObject_IsTrue(v);
    Py_DECREF(v);
    return t;
}

/* Protect and send one packet on the leg's connection: 1 sent, 2 dropped by a full socket buffer (as the
 * link would drop it; nothing queues behind it), 0 not sendable now, -1 a Python error. As
 * aiortc_hooks.DirectSend. Every call into Python (the router, attribute reads, a wrapped transport) may
 * change or clear this output's route: the objects used are held here, and the socket and SRTP session
 * are used only if the route is still the one these checks were made on. */
static int send_packet(Output *o, const uint8_t *data, int len, int payload_octets, uint32_t rtp_ts, int count) {
    uint8_t buf[MAX_PACKET + 2 + SRTP_TRAILER];
    if (len < 0 || len > MAX_PACKET + 2) return 0;
    memcpy(buf, data, len); /* first: Python run below may rewrite the history slot `data` points into */
    if (o->dtls == NULL) {
        if (o->router == NULL) return 0;
        PyObject *router = Py_NewRef(o->router);
        PyObject *r = PyObject_CallNoArgs(router);
        Py_DECREF(router);
        if (r == NULL) return -1;
        int rc = r == Py_None ? 0 : (take_route(o, r) < 0 ? -1 : 1);
        Py_DECREF(r);
        if (rc <= 0) return rc;
        if (o->dtls == NULL) return 0; /* cleared again by a destructor the new route released */
    }
    unsigned long gen = o->route_gen;
    PyObject *dtls = Py_NewRef(o->dtls), *connected = Py_NewRef(o->connected), *session = Py_NewRef(o->session),
             *proto = Py_NewRef(o->proto), *transport = Py_NewRef(o->transport), *vars = Py_NewRef(o->sender_vars),
             *keys = Py_NewRef(o->keys), *addr = Py_NewRef(o->addr_obj), *current = NULL;
    int rc = -1, t;
    PyObject *v = PyObject_GetAttr(dtls, str_state);
    if (v == NULL) goto done;
    Py_DECREF(v);
    if (v != connected) {
        rc = 0;
        goto done;
    }
    v = PyObject_GetAttr(dtls, str_tx_srtp);
    if (v == NULL) goto done;
    Py_DECREF(v);
    if (v != session) { /* re-keyed: find the route again */
        if (o->route_gen == gen) clear_route(o);
        rc = 0;
        goto done;
    }
    if ((t = attr_true(transport, str_closing)) != 0) { /* the socket is closed or closing: the route is gone */
        if (t > 0) {
            if (o->route_gen == gen) clear_route(o);
            rc = 0;
        }
        goto done;
    }
    current = PyObject_GetAttr(proto, str_transport);
    if (current == NULL) goto done;
    if (o->route_gen != gen) { /* Python changed the route while it ran: this packet is not sent */
        rc = 0;
        goto done;
    }
    /* nothing calls Python from here to the send: the route, its socket and SRTP session are these */
    int n = len;
    if (o->protect(o->srtp_ctx, buf, &n) != 0) {
        o->send_errors++;
        rc = 0;
        goto done;
    }
    int full = 0;
    if (current == transport && o->addr_len >= 0) {
        if (sendto(o->fd, buf, n, 0, o->addr_len ? (struct sockaddr *)&o->addr : NULL, o->addr_len) < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
                o->dropped++;
                full = 1;
            } else {
                o->send_errors++;
                rc = 0;
                goto done;
            }
        }
    } else { /* a test wraps the protocol's transport (loss, delay), or the address needs Python: through it */
        PyObject *bytes = PyBytes_FromStringAndSize((const char *)buf, n);
        PyObject *r = bytes ? PyObject_CallMethodObjArgs(current, str_sendto, bytes, addr, NULL) : NULL;
        Py_XDECREF(bytes);
        if (r == NULL) goto done;
        Py_DECREF(r);
    }
    rc = 1 + full;
    if (!count) goto done;
    PyObject *k_packets = PyTuple_GET_ITEM(keys, 0), *k_octets = PyTuple_GET_ITEM(keys, 1),
             *k_rtp = PyTuple_GET_ITEM(keys, 2), *k_ntp = PyTuple_GET_ITEM(keys, 3);
    if (native_add_to(vars, k_packets, 1) < 0 || native_add_to(vars, k_octets, payload_octets) < 0) {
        rc = -1;
        goto done;
    }
    if (!o->has_sr_ts || o->sr_rtp_ts != rtp_ts) { /* a frame's packets share both: the clock is read once a frame */
        o->sr_rtp_ts = rtp_ts;
        o->has_sr_ts = 1;
        PyObject *ts = PyLong_FromUnsignedLong(rtp_ts), *ntp = PyLong_FromUnsignedLongLong(ntp_now());
        int err = !ts || !ntp || PyDict_SetItem(vars, k_rtp, ts) < 0 || PyDict_SetItem(vars, k_ntp, ntp) < 0;
        Py_XDECREF(ts);
        Py_XDECREF(ntp);
        if (err) rc = -1;
    }
done:
    Py_XDECREF(current);
    Py_DECREF(dtls); Py_DECREF(connected); Py_DECREF(session); Py_DECREF(proto); Py_DECREF(transport);
    Py_DECREF(vars); Py_DECREF(keys); Py_DECREF(addr);
    return rc;
}

static PyObject *Output_send_retransmission(Output *self, PyObject *arg) {
    if (not_ready(self)) return NULL;
    long seq = PyLong_AsLong(arg);
    if (seq == -1 && PyErr_Occurred()) return NULL;
    uint8_t buf[MAX_PACKET + 2];
    int n = seq >= 0 && seq <= 0xFFFF ? retransmission(self, (int)seq, buf) : 0;
    if (!n) Py_RETURN_FALSE;
    int rc = send_packet(self, buf, n, 0, 0, 0);
    if (rc < 0) return NULL;
    return PyBool_FromLong(rc > 0);
}

static PyObject *Output_set_router(Output *self, PyObject *arg) {
    if (not_ready(self)) return NULL;
    clear_route(self);
    Py_XSETREF(self->router, arg == Py_None ? NULL : Py_NewRef(arg));
    Py_RETURN_NONE;
}

/* One source packet to every output: the rewritten packet protected and sent on each. Outputs still
 * waiting for a key frame whose last request is old are appended to *waiting (made when needed):
 * the caller asks the source. One output's error does not keep the packet from the others: the first
 * error is raised once every output has had it. 0, or -1 with a Python error. */
int native_fan_out(PyObject *outputs, int seq, uint32_t ts, int marker, const uint8_t *payload, Py_ssize_t plen,
                   int level, PyObject **waiting) {
    Py_ssize_t pic_at = -1;
    int key = 0, parsed = 0;
    long sent = abs_send_time_now();
    double now = -1;
    PyObject *err_type = NULL, *err_value = NULL, *err_tb = NULL;
    if (plen < 0 || plen > MAX_PACKET) return 0; /* no output could send it (build refuses it too) */
    Py_ssize_t count = PyTuple_GET_SIZE(outputs);
    for (Py_ssize_t i = 0; i < count; i++) {
        Output *o = (Output *)PyTuple_GET_ITEM(outputs, i);
        if (!o->ready) continue;
        if (PyErr_Occurred()) { /* the last output's error: kept, the others still get the packet */
            if (err_type == NULL)
                PyErr_Fetch(&err_type, &err_value, &err_tb);
            else
                PyErr_WriteUnraisable((PyObject *)o);
        }
        if (o->video && !parsed) { /* once, for every output */
            native_vp8_descriptor(payload, plen, &pic_at, &key);
            parsed = 1;
        }
        Slot *s = NULL;
        int n = build(o, seq & 0xFFFF, ts, marker, payload, plen, o->video ? pic_at : -1, key, sent, level, &s);
        if (n <= 0) {
            if (n == 0) {
                if (now < 0) now = monotonic_now();
                if (wants_keyframe(o, now)) {
                    if (*waiting == NULL) *waiting = PyList_New(0);
                    if (*waiting != NULL) PyList_Append(*waiting, (PyObject *)o);
                }
            }
            continue;
        }
        uint32_t frame_ts = 0;
        if (o->video) { /* a frame the kernel already dropped a packet of is not sent on: it cannot be decoded,
                         * and the link has no room; the receiver NACKs it (answered from the history) or asks
                         * for a key frame, and the next frame is sent */
            frame_ts = ((uint32_t)s->data[4] << 24) | ((uint32_t)s->data[5] << 16) | ((uint32_t)s->data[6] << 8) | s->data[7];
            if (o->skipping && frame_ts == o->skip_ts) {
                o->skipped++;
                continue;
            }
            o->skipping = 0;
        }
        int rc = send_packet(o, s->data, n, (int)plen, o->last_ts, 1);
        if (rc <= 0) continue; /* an error stays set: taken at the next output, or at the end */
        if (rc == 2 && o->video) {
            o->skipping = 1;
            o->skip_ts = frame_ts;
        }
        o->fwd_bytes += plen;
        if (o->video && !marker) continue;
        o->fwd_frames++;
        if (o->video) {
            double t = monotonic_now();
            if (o->last_frame_at >= 0 && t - o->last_frame_at > FREEZE_S) o->freezes++;
            o->last_frame_at = t;
        }
    }
    if (err_type != NULL) {
        if (PyErr_Occurred()) PyErr_WriteUnraisable(outputs);
        PyErr_Restore(err_type, err_value, err_tb);
    }
    return PyErr_Occurred() ? -1 : 0;
}

int native_is_outputs(PyObject *outputs) { /* a tuple of initialised Outputs */
    if (!PyTuple_Check(outputs)) return 0;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(outputs); i++) {
        PyObject *o = PyTuple_GET_ITEM(outputs, i);
        if (!PyObject_TypeCheck(o, &NativeOutputType) || !((Output *)o)->ready) return 0;
    }
    return 1;
}

PyObject *native_fan_out_py(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError, "fan_out(outputs, seq, ts, marker, payload, level)");
        return NULL;
    }
    PyObject *outputs = args[0];
    if (!native_is_outputs(outputs)) {
        PyErr_SetString(PyExc_TypeError, "outputs must be a tuple of initialised Outputs");
        return NULL;
    }
    unsigned long seq = PyLong_AsUnsignedLongMask(args[1]);
    if (seq == (unsigned long)-1 && PyErr_Occurred()) return NULL;
    unsigned long ts = PyLong_AsUnsignedLongMask(args[2]);
    if (ts == (unsigned long)-1 && PyErr_Occurred()) return NULL;
    int marker = PyObject_IsTrue(args[3]);
    if (marker < 0) return NULL;
    long level;
    if (parse_optional_bits(args[5], 7, &level) < 0) return NULL;
    Py_buffer payload;
    if (PyObject_GetBuffer(args[4], &payload, PyBUF_SIMPLE) < 0) return NULL;
    PyObject *waiting = NULL;
    int rc = native_fan_out(outputs, (int)(seq & 0xFFFF), (uint32_t)ts, marker, payload.buf, payload.len, (int)level,
                            &waiting);
    PyBuffer_Release(&payload);
    if (rc < 0) {
        Py_XDECREF(waiting);
        return NULL;
    }
    if (waiting == NULL) Py_RETURN_NONE;
    return waiting;
}

static PyObject *optional_int(int has, long long v) {
    return has ? PyLong_FromLongLong(v) : Py_NewRef(Py_None);
}

static PyObject *Output_get_last_seq(Output *o, void *c) { return optional_int(o->has_last_seq, o->last_seq); }
static PyObject *Output_get_last_ts(Output *o, void *c) { return optional_int(o->has_last_ts, o->last_ts); }
static PyObject *Output_get_last_pic(Output *o, void *c) { return optional_int(o->has_last_pic, o->last_pic); }
static PyObject *Output_get_need_keyframe(Output *o, void *c) { return PyBool_FromLong(o->need_keyframe); }
static PyObject *Output_get_video(Output *o, void *c) { return PyBool_FromLong(o->video); }
static PyObject *Output_get_asked_at(Output *o, void *c) { return PyFloat_FromDouble(o->asked_at); }
#define COUNTER(name) \
    static PyObject *Output_get_##name(Output *o, void *c) { return PyLong_FromUnsignedLongLong(o->name); }
COUNTER(packets)
COUNTER(octets)
COUNTER(frames)
COUNTER(retransmitted)
COUNTER(fwd_bytes)
COUNTER(fwd_frames)
COUNTER(freezes)
COUNTER(dropped)
COUNTER(skipped)
COUNTER(send_errors)

static PyObject *Output_get_kind(Output *o, void *c) { return Py_NewRef(o->kind ? o->kind : Py_None); }
static PyObject *Output_get_n(Output *o, void *c) { return Py_NewRef(o->negotiated ? o->negotiated : Py_None); }

static PyGetSetDef Output_getset[] = {
    {"last_seq", (getter)Output_get_last_seq, NULL, NULL, NULL},
    {"last_ts", (getter)Output_get_last_ts, NULL, NULL, NULL},
    {"last_pic", (getter)Output_get_last_pic, NULL, NULL, NULL},
    {"need_keyframe", (getter)Output_get_need_keyframe, NULL, NULL, NULL},
    {"video", (getter)Output_get_video, NULL, NULL, NULL},
    {"asked_at", (getter)Output_get_asked_at, NULL, NULL, NULL},
    {"packets", (getter)Output_get_packets, NULL, NULL, NULL},
    {"octets", (getter)Output_get_octets, NULL, NULL, NULL},
    {"frames", (getter)Output_get_frames, NULL, NULL, NULL},
    {"retransmitted", (getter)Output_get_retransmitted, NULL, "packets sent again on a receiver's NACK", NULL},
    {"bytes_forwarded", (getter)Output_get_fwd_bytes, NULL, "payload octets sent by fan_out", NULL},
    {"frames_forwarded", (getter)Output_get_fwd_frames, NULL, "frames sent by fan_out", NULL},
    {"freezes", (getter)Output_get_freezes, NULL, "gaps over 0.2 s between video frames sent by fan_out", NULL},
    {"dropped", (getter)Output_get_dropped, NULL, "packets the kernel had no room for", NULL},
    {"skipped", (getter)Output_get_skipped, NULL, "packets not sent: the rest of a video frame the kernel dropped a packet of",
     NULL},
    {"send_errors", (getter)Output_get_send_errors, NULL, "packets SRTP or the socket refused", NULL},
    {"kind", (getter)Output_get_kind, NULL, NULL, NULL},
    {"n", (getter)Output_get_n, NULL, "the Negotiated it was made with", NULL},
    {NULL}};

static PyMethodDef Output_methods[] = {
    {"packet", (PyCFunction)(void (*)(void))Output_packet, METH_VARARGS | METH_KEYWORDS,
     "packet($self, /, seq, ts, marker, payload, desc=None, sent=None, level=None)\n--\n\n"
     "bytes | None, as RtpOutput.packet"},
    {"retransmission", (PyCFunction)Output_retransmission, METH_O,
     "retransmission($self, seq, /)\n--\n\nas RtpOutput.retransmission"},
    {"send_retransmission", (PyCFunction)Output_send_retransmission, METH_O,
     "send_retransmission($self, seq, /)\n--\n\n"
     "answer a NACK for one sequence number on the leg's connection; False if not in the history"},
    {"switched", (PyCFunction)Output_switched, METH_O, "switched($self, now, /)\n--\n\nas RtpOutput.switched"},
    {"wants_keyframe", (PyCFunction)Output_wants_keyframe, METH_O,
     "wants_keyframe($self, now, /)\n--\n\nas RtpOutput.wants_keyframe"},
    {"set_router", (PyCFunction)Output_set_router, METH_O,
     "set_router($self, router, /)\n--\n\n"
     "router: a callable returning the route (media.native_routes.SendRoute), or None while there is none"},
    {NULL}};

PyTypeObject NativeOutputType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "media.native.Output",
    .tp_doc = "Output(kind, negotiated)\n--\n\nmedia.rtp_output.RtpOutput in C, with protect and send (fan_out)",
    .tp_basicsize = sizeof(Output),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = Output_new,
    .tp_init = (initproc)Output_init,
    .tp_dealloc = (destructor)Output_dealloc,
    .tp_traverse = (traverseproc)Output_traverse,
    .tp_clear = (inquiry)Output_clear,
    .tp_methods = Output_methods,
    .tp_getset = Output_getset,
};

int native_output_ready(void) {
    str_state = PyUnicode_InternFromString("_state");
    str_transport = PyUnicode_InternFromString("transport");
    str_tx_srtp = PyUnicode_InternFromString("_tx_srtp");
    str_sendto = PyUnicode_InternFromString("sendto");
    str_closing = PyUnicode_InternFromString("_closing"); /* asyncio's transport: set by close() */
    if (!str_state || !str_transport || !str_tx_srtp || !str_sendto || !str_closing) return -1;
    return PyType_Ready(&NativeOutputType);
}

int native_output_export(PyObject *m) {
    if (PyModule_AddIntConstant(m, "HISTORY", HISTORY) < 0 || PyModule_AddIntConstant(m, "REORDER", REORDER) < 0 ||
        PyModule_AddIntConstant(m, "VIDEO_STEP", VIDEO_STEP) < 0 ||
        PyModule_AddIntConstant(m, "AUDIO_STEP", AUDIO_STEP) < 0 ||
        native_export_float(m, "KEYFRAME_RETRY_S", KEYFRAME_RETRY_S) < 0 ||
        native_export_float(m, "FREEZE_S", FREEZE_S) < 0)
        return -1;
    return native_export_names(m, "SEND_ROUTE", send_route_fields);
}

/* media.native: RTP-level forwarding's per-packet work in C. What its files share.
 *   native_output.c  an outgoing stream: media/rtp_output.py's RtpOutput, SRTP protect, send (fan_out)
 *   native_input.c   a leg's sockets: read, SRTP unprotect, header, statistics, then fan_out (Demux)
 *   native_stats.c   aiortc's StreamStatistics and NackGenerator, which both paths feed
 *   native_estimate.c  aiortc's RemoteBitrateEstimator (the REMB a publisher gets)
 *   native_module.c  the module
 * The Python these replace is the specification, and the tests run both. */
#ifndef CONFCTL_NATIVE_H
#define CONFCTL_NATIVE_H
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

/* libsrtp 2: srtp_protect, srtp_unprotect. Called through the addresses pylibsrtp's binding gives, whose
 * signature media/aiortc_hooks.py (libsrtp_functions) checks against this one before a route is built. */
typedef int (*srtp_fn)(void *ctx, void *packet, int *len);

#define MAX_PACKET 1500   /* the longest RTP packet built, and the longest datagram read: pylibsrtp's buffer */
#define SRTP_TRAILER 144  /* SRTP_MAX_TAG_LEN + SRTP_MAX_MKI_LEN, as pylibsrtp reserves */

extern PyTypeObject NativeOutputType, NativeStatsType, NativeNackType, NativeStreamType, NativeDemuxType,
    NativeEstimatorType;

double native_realtime(void);
Py_ssize_t native_vp8_descriptor(const uint8_t *p, Py_ssize_t n, Py_ssize_t *pic_at, int *key);
PyObject *native_vp8_descriptor_py(PyObject *module, PyObject *arg);
PyObject *native_parse_header_py(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
int native_add_to(PyObject *vars, PyObject *key, long long n);
int native_is_outputs(PyObject *outputs);
int native_fan_out(PyObject *outputs, int seq, uint32_t ts, int marker, const uint8_t *payload, Py_ssize_t plen,
                   int level, PyObject **waiting);
PyObject *native_fan_out_py(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
void native_stats_add(PyObject *stats, int seq, uint32_t ts);
int native_nack_add(PyObject *nack, int seq);
long long native_estimate(PyObject *estimator, long long arrival_ms, uint32_t abs_send_time, long long size,
                          uint32_t ssrc);
PyObject *native_estimate_ssrcs(PyObject *estimator);
int native_output_ready(void);
int native_stats_ready(void);
int native_input_ready(void);

/* Each file's constants that Python holds too (media/rtp_output.py, media/forwarding.py, aiortc's), and the
 * fields of the routes it reads (media/native_routes.py), as module attributes: a test compares the two sides
 * (tests/media/test_native_constants.py) instead of a comment saying "as". */
int native_export_float(PyObject *module, const char *name, double value);
int native_export_names(PyObject *module, const char *name, const char *const *names);
int native_output_export(PyObject *module);
int native_input_export(PyObject *module);
int native_stats_export(PyObject *module);
int native_estimate_export(PyObject *module);

#endif

/* The media.native module: see native.h. */
#include "native.h"

int native_export_float(PyObject *module, const char *name, double value) {
    PyObject *v = PyFloat_FromDouble(value);
    int rc = v ? PyModule_AddObjectRef(module, name, v) : -1;
    Py_XDECREF(v);
    return rc;
}

/* a tuple of str: a route's field names, in the order the C reads them */
int native_export_names(PyObject *module, const char *name, const char *const *names) {
    Py_ssize_t n = 0;
    while (names[n]) n++;
    PyObject *t = PyTuple_New(n);
    if (t == NULL) return -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *s = PyUnicode_FromString(names[i]);
        if (s == NULL) {
            Py_DECREF(t);
            return -1;
        }
        PyTuple_SET_ITEM(t, i, s);
    }
    int rc = PyModule_AddObjectRef(module, name, t);
    Py_DECREF(t);
    return rc;
}

static PyMethodDef module_methods[] = {
    {"fan_out", (PyCFunction)(void (*)(void))native_fan_out_py, METH_FASTCALL,
     "fan_out($module, outputs, seq, ts, marker, payload, level, /)\n--\n\n"
     "One source packet to every output (a tuple of Output): the list of outputs to ask a key frame for, or None"},
    {"parse_header", (PyCFunction)(void (*)(void))native_parse_header_py, METH_FASTCALL,
     "parse_header($module, data, abs_send_time_id, audio_level_id=None, /)\n--\n\n"
     "A tuple or None: media.rtp_input.parse_header in C (what the socket reader runs), for the tests that "
     "compare the two"},
    {"vp8_descriptor", (PyCFunction)native_vp8_descriptor_py, METH_O,
     "vp8_descriptor($module, payload, /)\n--\n\n"
     "(length, picture ID offset or None, starts a key frame): media.rtp_output.vp8_descriptor in C"},
    {NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "media.native",
                                    "RTP-level forwarding's per-packet work in C (media/native.h)", -1, module_methods};

PyMODINIT_FUNC PyInit_native(void) {
    if (native_output_ready() < 0 || native_stats_ready() < 0 || native_input_ready() < 0 ||
        PyType_Ready(&NativeEstimatorType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    if (PyModule_AddObjectRef(m, "Output", (PyObject *)&NativeOutputType) < 0 ||
        PyModule_AddObjectRef(m, "StreamStatistics", (PyObject *)&NativeStatsType) < 0 ||
        PyModule_AddObjectRef(m, "NackGenerator", (PyObject *)&NativeNackType) < 0 ||
        PyModule_AddObjectRef(m, "Stream", (PyObject *)&NativeStreamType) < 0 ||
        PyModule_AddObjectRef(m, "Demux", (PyObject *)&NativeDemuxType) < 0 ||
        PyModule_AddObjectRef(m, "RemoteBitrateEstimator", (PyObject *)&NativeEstimatorType) < 0 ||
        PyModule_AddIntConstant(m, "MAX_PACKET", MAX_PACKET) < 0 ||
        PyModule_AddIntConstant(m, "SRTP_TRAILER", SRTP_TRAILER) < 0 || native_output_export(m) < 0 ||
        native_input_export(m) < 0 || native_stats_export(m) < 0 || native_estimate_export(m) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

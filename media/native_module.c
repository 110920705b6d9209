/* The media.native module: see native.h. */
#include "native.h"

static PyMethodDef module_methods[] = {
    {"fan_out", (PyCFunction)(void (*)(void))native_fan_out_py, METH_FASTCALL,
     "fan_out(outputs: tuple[Output, ...], seq, ts, marker, payload, level) -> list of outputs to ask a key "
     "frame for, or None"},
    {"parse_header", (PyCFunction)(void (*)(void))native_parse_header_py, METH_FASTCALL,
     "parse_header(data, abs_send_time_id, audio_level_id=None) -> tuple or None: media.rtp_input.parse_header "
     "in C (what the socket reader runs), for the tests that compare the two"},
    {"vp8_descriptor", (PyCFunction)native_vp8_descriptor_py, METH_O,
     "vp8_descriptor(payload) -> (length, picture ID offset or None, starts a key frame): "
     "media.rtp_output.vp8_descriptor in C"},
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
        PyModule_AddObjectRef(m, "RemoteBitrateEstimator", (PyObject *)&NativeEstimatorType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

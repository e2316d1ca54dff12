// The OTLP request's protobuf decoding in C: `ExportTraceServiceRequest` parsed by upb, protobuf's own C runtime
// (the parser under the `protobuf` package's Python classes), with the published `opentelemetry-proto` descriptors
// handed over from Python at start-up. No wire format is read here: upb parses, and this walks the parsed message
// as `ingestion.otlp._decode_protobuf_py` walks the Python classes' objects, returning the same `RawSpan`s.
// Built by ingestion/upb_build.py (`make install`); without it `ingestion.otlp` decodes in Python.
// docs/otlp-performance.md (twenty-fourth pass) measures both.
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#include "google/protobuf/descriptor.upb.h"
#include "upb/mem/arena.h"
#include "upb/message/array.h"
#include "upb/message/message.h"
#include "upb/reflection/def.h"
#include "upb/reflection/message.h"
#include "upb/wire/decode.h"

static upb_DefPool* pool;
static const upb_MiniTable* request_table;
static const upb_FieldDef *f_resource_spans, *f_scope_spans, *f_scope, *f_scope_name, *f_spans, *f_trace_id,
    *f_span_id, *f_parent_span_id, *f_start, *f_end, *f_attributes, *f_status, *f_status_code, *f_key, *f_value,
    *f_string, *f_bool, *f_int, *f_double;
static const upb_OneofDef* o_value;
static PyObject* kept_keys;  // frozenset of the attribute keys the mapping reads
static PyObject* raw_span;   // ingestion.otlp.RawSpan

#define TRACE_ID_BYTES 16
#define SPAN_ID_BYTES 8

#define TRACE "opentelemetry.proto.trace.v1."
#define COMMON "opentelemetry.proto.common.v1."
// Every field the decoder reads, looked up by name in the loaded descriptors.
static const struct {
  const char* message;
  const char* name;
  const upb_FieldDef** field;
} FIELDS[] = {
    {"opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest", "resource_spans", &f_resource_spans},
    {TRACE "ResourceSpans", "scope_spans", &f_scope_spans},
    {TRACE "ScopeSpans", "scope", &f_scope},
    {TRACE "ScopeSpans", "spans", &f_spans},
    {COMMON "InstrumentationScope", "name", &f_scope_name},
    {TRACE "Span", "trace_id", &f_trace_id},
    {TRACE "Span", "span_id", &f_span_id},
    {TRACE "Span", "parent_span_id", &f_parent_span_id},
    {TRACE "Span", "start_time_unix_nano", &f_start},
    {TRACE "Span", "end_time_unix_nano", &f_end},
    {TRACE "Span", "attributes", &f_attributes},
    {TRACE "Span", "status", &f_status},
    {TRACE "Status", "code", &f_status_code},
    {COMMON "KeyValue", "key", &f_key},
    {COMMON "KeyValue", "value", &f_value},
    {COMMON "AnyValue", "string_value", &f_string},
    {COMMON "AnyValue", "bool_value", &f_bool},
    {COMMON "AnyValue", "int_value", &f_int},
    {COMMON "AnyValue", "double_value", &f_double},
};

static const upb_FieldDef* field(const char* message, const char* name) {
  const upb_MessageDef* m = upb_DefPool_FindMessageByName(pool, message);
  return m ? upb_MessageDef_FindFieldByNameWithSize(m, name, strlen(name)) : NULL;
}

// setup(files, kept_keys, raw_span): the serialized FileDescriptorProtos, each after the files it imports.
static PyObject* setup(PyObject* self, PyObject* args) {
  PyObject *files, *keys, *cls;
  if (!PyArg_ParseTuple(args, "OOO", &files, &keys, &cls)) return NULL;
  if (pool) {
    PyErr_SetString(PyExc_RuntimeError, "_otlp_upb.setup was already called");
    return NULL;
  }
  PyObject* seq = PySequence_Fast(files, "files must be a sequence of bytes");
  if (!seq) return NULL;
  upb_DefPool* new_pool = upb_DefPool_New();
  upb_Arena* arena = upb_Arena_New();
  if (!new_pool || !arena) {
    Py_DECREF(seq);
    if (new_pool) upb_DefPool_Free(new_pool);
    if (arena) upb_Arena_Free(arena);
    return PyErr_NoMemory();
  }
  for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq); i++) {
    char* buf;
    Py_ssize_t size;
    if (PyBytes_AsStringAndSize(PySequence_Fast_GET_ITEM(seq, i), &buf, &size) < 0) goto fail;
    google_protobuf_FileDescriptorProto* proto = google_protobuf_FileDescriptorProto_parse(buf, size, arena);
    upb_Status status;
    upb_Status_Clear(&status);
    if (!proto) {
      PyErr_SetString(PyExc_ValueError, "not a serialized FileDescriptorProto");
      goto fail;
    }
    if (!upb_DefPool_AddFile(new_pool, proto, &status)) {
      PyErr_Format(PyExc_ValueError, "descriptor not loaded: %s", upb_Status_ErrorMessage(&status));
      goto fail;
    }
  }
  Py_DECREF(seq);
  upb_Arena_Free(arena);
  pool = new_pool;
  const upb_MessageDef* request =
      upb_DefPool_FindMessageByName(pool, "opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest");
  request_table = request ? upb_MessageDef_MiniTable(request) : NULL;
  if (!request_table) {
    PyErr_SetString(PyExc_ValueError, "the descriptors lack ExportTraceServiceRequest");
    return NULL;
  }
  for (size_t i = 0; i < sizeof(FIELDS) / sizeof(FIELDS[0]); i++) {
    *FIELDS[i].field = field(FIELDS[i].message, FIELDS[i].name);
    if (!*FIELDS[i].field) {
      PyErr_Format(PyExc_ValueError, "the descriptors lack %s.%s, which the decoder reads", FIELDS[i].message,
                   FIELDS[i].name);
      return NULL;
    }
  }
  o_value = upb_FieldDef_RealContainingOneof(f_string);
  if (!o_value) {
    PyErr_SetString(PyExc_ValueError, "AnyValue.string_value is not in a oneof");
    return NULL;
  }
  Py_INCREF(keys);
  kept_keys = keys;
  Py_INCREF(cls);
  raw_span = cls;
  Py_RETURN_NONE;

fail:
  Py_DECREF(seq);
  upb_Arena_Free(arena);
  upb_DefPool_Free(new_pool);
  return NULL;
}

static PyObject* text(upb_StringView v) { return PyUnicode_DecodeUTF8(v.data, (Py_ssize_t)v.size, NULL); }

static PyObject* hex(upb_StringView v) {
  static const char digits[] = "0123456789abcdef";
  PyObject* s = PyUnicode_New((Py_ssize_t)v.size * 2, 127);
  if (!s) return NULL;
  Py_UCS1* out = PyUnicode_1BYTE_DATA(s);
  for (size_t i = 0; i < v.size; i++) {
    unsigned char c = (unsigned char)v.data[i];
    out[2 * i] = digits[c >> 4];
    out[2 * i + 1] = digits[c & 15];
  }
  return s;
}

static int all_zero(upb_StringView v) {
  for (size_t i = 0; i < v.size; i++)
    if (v.data[i]) return 0;
  return 1;
}

static const upb_Message* submessage(const upb_Message* msg, const upb_FieldDef* f) {
  return upb_Message_HasFieldByDef(msg, f) ? upb_Message_GetFieldByDef(msg, f).msg_val : NULL;
}

static size_t array_size(const upb_Array* array) { return array ? upb_Array_Size(array) : 0; }

// An attribute's value as the Python decoder reads it: a text, bool, int or float; None for any other kind or none.
static PyObject* value_of(const upb_Message* any) {
  const upb_FieldDef* kind = any ? upb_Message_WhichOneofByDef(any, o_value) : NULL;
  if (!kind) Py_RETURN_NONE;
  upb_MessageValue v = upb_Message_GetFieldByDef(any, kind);
  if (kind == f_string) return text(v.str_val);
  if (kind == f_bool) return PyBool_FromLong(v.bool_val);
  if (kind == f_int) return PyLong_FromLongLong(v.int64_val);
  if (kind == f_double) return PyFloat_FromDouble(v.double_val);
  Py_RETURN_NONE;
}

// The kept attributes of a span, later keys winning, as a new dict.
static PyObject* attributes_of(const upb_Message* span) {
  PyObject* attrs = PyDict_New();
  if (!attrs) return NULL;
  const upb_Array* pairs = upb_Message_GetFieldByDef(span, f_attributes).array_val;
  size_t n = array_size(pairs);
  for (size_t i = 0; i < n; i++) {
    const upb_Message* pair = upb_Array_Get(pairs, i).msg_val;
    PyObject* key = text(upb_Message_GetFieldByDef(pair, f_key).str_val);
    if (!key) goto fail;
    int kept = PySet_Contains(kept_keys, key);
    if (kept < 0) {
      Py_DECREF(key);
      goto fail;
    }
    if (kept) {
      PyObject* value = value_of(submessage(pair, f_value));
      int failed = !value || PyDict_SetItem(attrs, key, value) < 0;
      Py_XDECREF(value);
      if (failed) {
        Py_DECREF(key);
        goto fail;
      }
    }
    Py_DECREF(key);
  }
  return attrs;
fail:
  Py_DECREF(attrs);
  return NULL;
}

// RawSpan(trace_id, span_id, parent_span_id, scope, start_ns, end_ns, status_code, attrs, ids_valid)
static PyObject* span_of(const upb_Message* span, PyObject* scope) {
  upb_StringView trace_id = upb_Message_GetFieldByDef(span, f_trace_id).str_val;
  upb_StringView span_id = upb_Message_GetFieldByDef(span, f_span_id).str_val;
  upb_StringView parent = upb_Message_GetFieldByDef(span, f_parent_span_id).str_val;
  int ids_valid = trace_id.size == TRACE_ID_BYTES && !all_zero(trace_id) && span_id.size == SPAN_ID_BYTES &&
                  !all_zero(span_id) && (parent.size == 0 || parent.size == SPAN_ID_BYTES);
  const upb_Message* status = submessage(span, f_status);
  PyObject* args[9] = {
      hex(trace_id),
      hex(span_id),
      hex(parent),
      scope,
      PyLong_FromUnsignedLongLong(upb_Message_GetFieldByDef(span, f_start).uint64_val),
      PyLong_FromUnsignedLongLong(upb_Message_GetFieldByDef(span, f_end).uint64_val),
      PyLong_FromLong(status ? upb_Message_GetFieldByDef(status, f_status_code).int32_val : 0),
      attributes_of(span),
      PyBool_FromLong(ids_valid),
  };
  Py_INCREF(scope);
  PyObject* result = NULL;
  int complete = 1;
  for (int i = 0; i < 9; i++) complete &= args[i] != NULL;
  if (complete) result = PyObject_Vectorcall(raw_span, args, 9, NULL);
  for (int i = 0; i < 9; i++) Py_XDECREF(args[i]);
  return result;
}

// decode(body) -> list[RawSpan]; ValueError when upb cannot parse the body as an ExportTraceServiceRequest.
static PyObject* decode(PyObject* self, PyObject* body) {
  if (!pool) {
    PyErr_SetString(PyExc_RuntimeError, "_otlp_upb.setup was not called");
    return NULL;
  }
  char* buf;
  Py_ssize_t size;
  if (PyBytes_AsStringAndSize(body, &buf, &size) < 0) return NULL;
  upb_Arena* arena = upb_Arena_New();
  if (!arena) return PyErr_NoMemory();
  upb_Message* request = upb_Message_New(request_table, arena);
  if (!request) {
    upb_Arena_Free(arena);
    return PyErr_NoMemory();
  }
  // Strings alias `body`, which the caller holds until this returns. The default options otherwise, as the
  // protobuf package's own FromString uses them (upb's default depth limit, UTF-8 checked for proto3 strings).
  upb_DecodeStatus status = upb_Decode(buf, (size_t)size, request, request_table, NULL,
                                       kUpb_DecodeOption_AliasString, arena);
  if (status != kUpb_DecodeStatus_Ok) {
    upb_Arena_Free(arena);
    PyErr_Format(PyExc_ValueError, "Error parsing message (%s)", upb_DecodeStatus_String(status));
    return NULL;
  }
  PyObject* spans = PyList_New(0);
  if (!spans) goto fail;
  const upb_Array* resource_spans = upb_Message_GetFieldByDef(request, f_resource_spans).array_val;
  for (size_t i = 0; i < array_size(resource_spans); i++) {
    const upb_Message* resource = upb_Array_Get(resource_spans, i).msg_val;
    const upb_Array* scope_spans = upb_Message_GetFieldByDef(resource, f_scope_spans).array_val;
    for (size_t j = 0; j < array_size(scope_spans); j++) {
      const upb_Message* group = upb_Array_Get(scope_spans, j).msg_val;
      const upb_Message* scope_message = submessage(group, f_scope);
      upb_StringView no_name = {"", 0};
      PyObject* scope = text(scope_message ? upb_Message_GetFieldByDef(scope_message, f_scope_name).str_val : no_name);
      if (!scope) goto fail;
      const upb_Array* group_spans = upb_Message_GetFieldByDef(group, f_spans).array_val;
      for (size_t k = 0; k < array_size(group_spans); k++) {
        PyObject* span = span_of(upb_Array_Get(group_spans, k).msg_val, scope);
        int failed = !span || PyList_Append(spans, span) < 0;
        Py_XDECREF(span);
        if (failed) {
          Py_DECREF(scope);
          goto fail;
        }
      }
      Py_DECREF(scope);
    }
  }
  upb_Arena_Free(arena);
  return spans;
fail:
  Py_XDECREF(spans);
  upb_Arena_Free(arena);
  return NULL;
}

static PyMethodDef methods[] = {
    {"setup", setup, METH_VARARGS, "Load the descriptors, the kept attribute keys and the RawSpan class."},
    {"decode", decode, METH_O, "An ExportTraceServiceRequest's spans as RawSpans."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_otlp_upb", NULL, -1, methods};

PyMODINIT_FUNC PyInit__otlp_upb(void) { return PyModule_Create(&module); }

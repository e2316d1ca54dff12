// The OTLP request's protobuf decoding in C: `ExportTraceServiceRequest` parsed by upb, protobuf's own C runtime
// (the parser under the `protobuf` package's Python classes), with the published `opentelemetry-proto` descriptors
// handed over from Python at start-up. No wire format is read here: upb parses, and this walks the parsed message
// as `ingestion.otlp._decode_protobuf_py` walks the Python classes' objects, returning the same `RawSpan`s.
// `records` also maps the usual spans as it reads them (the mapping's fast path, below), leaving the others to
// `ingestion.otlp.span_record`. Built by ingestion/upb_build.py (`make install`); without it `ingestion.otlp` decodes
// and maps in Python. docs/otlp-performance.md (twenty-fourth and twenty-fifth passes) measures both.
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <datetime.h>
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

// What span_record checks of the ids: a trace id of 16 bytes and a span id of 8, neither all zero, a parent of 0 or 8.
static int ids_valid(upb_StringView trace_id, upb_StringView span_id, upb_StringView parent) {
  return trace_id.size == TRACE_ID_BYTES && !all_zero(trace_id) && span_id.size == SPAN_ID_BYTES &&
         !all_zero(span_id) && (parent.size == 0 || parent.size == SPAN_ID_BYTES);
}

// RawSpan(trace_id, span_id, parent_span_id, scope, start_ns, end_ns, status_code, attrs, ids_valid)
static PyObject* span_of(const upb_Message* span, PyObject* scope) {
  upb_StringView trace_id = upb_Message_GetFieldByDef(span, f_trace_id).str_val;
  upb_StringView span_id = upb_Message_GetFieldByDef(span, f_span_id).str_val;
  upb_StringView parent = upb_Message_GetFieldByDef(span, f_parent_span_id).str_val;
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
      PyBool_FromLong(ids_valid(trace_id, span_id, parent)),
  };
  Py_INCREF(scope);
  PyObject* result = NULL;
  int complete = 1;
  for (int i = 0; i < 9; i++) complete &= args[i] != NULL;
  if (complete) result = PyObject_Vectorcall(raw_span, args, 9, NULL);
  for (int i = 0; i < 9; i++) Py_XDECREF(args[i]);
  return result;
}

// --- the mapping's fast path -------------------------------------------------------------------------------
// `records(body, bound)` maps the usual span in C, exactly as `ingestion.otlp.span_record` does, and leaves every
// other span to it as a RawSpan: the rule is in Python, this only spares its interpreter the common case. A span
// is taken here only when each kept attribute it carries is of the kind this path reads (texts of printable ASCII
// where a text is kept as sent, token counts as in-range ints, stream flags as bools), no key repeats, and none of
// the attributes that need the slower rules is present (an explicit path, Vercel's and OpenInference's operation
// keys, and on a call: error type, HTTP status, time to first chunk, service tier, a reported cost). Anything
// else, ids span_record would refuse included, goes to Python. tests/ingestion/test_otlp_upb.py compares the two.

#define MAX_KEYS 128
#define KEY_SLOTS 256
// Roles of a kept key (ingestion.otlp._fast_roles gives each key one): the alias table's fields first, in
// ALIAS_FIELDS' order, then the keys read alone.
enum {
  R_PROVIDER, R_MODEL, R_INPUT, R_CACHE_READ, R_CACHE_WRITE, R_OUTPUT, R_REASONING, R_STREAM, R_CUSTOMER, R_COST,
  N_ALIAS_FIELDS,
  R_OPERATION = N_ALIAS_FIELDS, R_AGENT, R_TOOL, R_RESPONSE_ID, R_SERVER_ADDRESS, R_RARE_CALL, R_RARE_ANY, N_ROLES
};

typedef struct {
  PyObject* key;  // the kept key (a str): owns `bytes`
  const char* bytes;
  Py_ssize_t size;
  int role;
} Key;
static Key keys[MAX_KEYS];
static int n_keys;
static short slots[KEY_SLOTS];  // open addressing: key index + 1, 0 for empty
static short alias_keys[N_ALIAS_FIELDS][MAX_KEYS];  // each field's key indexes, in priority order
static int n_alias_keys[N_ALIAS_FIELDS];
static int single_key[N_ROLES];  // the key index of a role read alone (the last one given)
static PyObject *span_in, *event_in, *provider_normalise, *segment, *rank_of, *source_of, *fromtimestamp, *utc;
static PyObject *zero, *s_empty, *s_llm, *s_embedding, *s_unknown, *s_ok, *s_error, *s_agent_prefix, *s_tool_prefix,
    *s_usage_missing;
static long long max_tokens;
static int mapping_ready;

static unsigned key_hash(const char* data, size_t size) {
  unsigned h = 2166136261u;  // FNV-1a
  for (size_t i = 0; i < size; i++) h = (h ^ (unsigned char)data[i]) * 16777619u;
  return h;
}

static int key_index(upb_StringView v) {
  for (unsigned h = key_hash(v.data, v.size) % KEY_SLOTS;; h = (h + 1) % KEY_SLOTS) {
    int slot = slots[h];
    if (!slot) return -1;
    if ((size_t)keys[slot - 1].size == v.size && memcmp(keys[slot - 1].bytes, v.data, v.size) == 0) return slot - 1;
  }
}

// setup_mapping(roles, aliases, objects): roles {key: role}; aliases: per alias field, its keys in priority order;
// objects: the classes and functions the mapping builds with (see ingestion.otlp._upb_records).
static PyObject* setup_mapping(PyObject* self, PyObject* args) {
  PyObject *roles, *aliases, *objects;
  if (!PyArg_ParseTuple(args, "O!O!O!", &PyDict_Type, &roles, &PyTuple_Type, &aliases, &PyDict_Type, &objects))
    return NULL;
  if (mapping_ready) {
    PyErr_SetString(PyExc_RuntimeError, "_otlp_upb.setup_mapping was already called");
    return NULL;
  }
  if (PyDict_Size(roles) > MAX_KEYS || PyTuple_GET_SIZE(aliases) != N_ALIAS_FIELDS) {
    PyErr_SetString(PyExc_ValueError, "unexpected role table");
    return NULL;
  }
  for (int r = 0; r < N_ROLES; r++) single_key[r] = -1;
  PyObject *key, *role;
  Py_ssize_t pos = 0;
  while (PyDict_Next(roles, &pos, &key, &role)) {
    long r = PyLong_AsLong(role);
    Py_ssize_t size;
    const char* bytes = PyUnicode_Check(key) ? PyUnicode_AsUTF8AndSize(key, &size) : NULL;
    if (!bytes || r < 0 || r >= N_ROLES) {
      if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "a role must map a str to a known role");
      return NULL;
    }
    Py_INCREF(key);
    keys[n_keys] = (Key){key, bytes, size, (int)r};
    unsigned h = key_hash(bytes, (size_t)size) % KEY_SLOTS;
    while (slots[h]) h = (h + 1) % KEY_SLOTS;
    slots[h] = (short)(n_keys + 1);
    if (r > R_COST) single_key[r] = n_keys;
    n_keys++;
  }
  for (int f = 0; f < N_ALIAS_FIELDS; f++) {
    PyObject* list = PyTuple_GET_ITEM(aliases, f);
    if (!PyTuple_Check(list)) {
      PyErr_SetString(PyExc_ValueError, "aliases must be tuples of keys");
      return NULL;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(list); i++) {
      PyObject* alias = PyTuple_GET_ITEM(list, i);
      Py_ssize_t size;
      const char* bytes = PyUnicode_Check(alias) ? PyUnicode_AsUTF8AndSize(alias, &size) : NULL;
      int index = bytes ? key_index((upb_StringView){bytes, (size_t)size}) : -1;
      if (index < 0 || keys[index].role != f) {
        if (!PyErr_Occurred()) PyErr_Format(PyExc_ValueError, "alias %R of field %d has no such role", alias, f);
        return NULL;
      }
      alias_keys[f][n_alias_keys[f]++] = (short)index;
    }
  }
  static const struct {
    const char* name;
    PyObject** target;
  } OBJECTS[] = {
      {"SpanIn", &span_in}, {"EventIn", &event_in}, {"provider_normalise", &provider_normalise},
      {"segment", &segment}, {"rank", &rank_of}, {"source", &source_of}, {"fromtimestamp", &fromtimestamp},
      {"utc", &utc},
  }, TEXTS[] = {  // the texts the records hold, each made once
      {"", &s_empty}, {"llm", &s_llm}, {"embedding", &s_embedding}, {"unknown", &s_unknown}, {"ok", &s_ok},
      {"error", &s_error}, {"agent:", &s_agent_prefix}, {"tool:", &s_tool_prefix}, {"usage_missing", &s_usage_missing},
  };
  for (size_t i = 0; i < sizeof(OBJECTS) / sizeof(OBJECTS[0]); i++) {
    PyObject* value = PyDict_GetItemString(objects, OBJECTS[i].name);
    if (!value) {
      PyErr_Format(PyExc_ValueError, "setup_mapping lacks %s", OBJECTS[i].name);
      return NULL;
    }
    *OBJECTS[i].target = Py_NewRef(value);
  }
  for (size_t i = 0; i < sizeof(TEXTS) / sizeof(TEXTS[0]); i++)
    if (!(*TEXTS[i].target = PyUnicode_InternFromString(TEXTS[i].name))) return NULL;
  if (!(zero = PyLong_FromLong(0))) return NULL;
  PyObject* limit = PyDict_GetItemString(objects, "max_tokens");
  max_tokens = limit ? PyLong_AsLongLong(limit) : -1;
  if (max_tokens < 0) {
    if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "setup_mapping lacks max_tokens");
    return NULL;
  }
  mapping_ready = 1;
  Py_RETURN_NONE;
}

// An attribute as the fast path holds it: its value's kind and value, no Python object yet.
typedef struct {
  const upb_FieldDef* kind;  // NULL: the key is absent
  upb_MessageValue value;
} Held;

static int equals(upb_StringView v, const char* text) {
  size_t size = strlen(text);
  return v.size == size && memcmp(v.data, text, size) == 0;
}

// A text `_text(value, limit)` returns unchanged: printable ASCII, no space at either end, within the limit.
static int plain(upb_StringView v, size_t limit) {
  if (v.size > limit) return 0;
  for (size_t i = 0; i < v.size; i++)
    if (v.data[i] < 0x20 || v.data[i] > 0x7e) return 0;
  return v.size == 0 || (v.data[0] != ' ' && v.data[v.size - 1] != ' ');
}

// The attribute of a role read alone (NULL when no key has it).
static const Held* single(const Held* held, int role) { return single_key[role] >= 0 ? &held[single_key[role]] : NULL; }

static PyObject* str_of(const Held* held) {
  return held && held->kind ? text(held->value.str_val) : Py_NewRef(Py_None);
}

// The first present alias of a field with a value that is not "" (a None value sends the span to Python: record_of).
static const Held* first_of(const Held* held, int field) {
  for (int i = 0; i < n_alias_keys[field]; i++) {
    const Held* h = &held[alias_keys[field][i]];
    if (h->kind && !(h->kind == f_string && h->value.str_val.size == 0)) return h;
  }
  return NULL;
}

static PyObject* call_of(const upb_Message* span, const Held* held, const Held* op, PyObject* customer_id,
                         PyObject* bound, int* status_ok);

// The span as a SpanIn; Py_None when it is for `span_record`; NULL on error. `scope_source`, `scope_rank`: the
// scope's `_source` and `_rank`.
static PyObject* record_of(const upb_Message* span, PyObject* scope_source, PyObject* scope_rank, PyObject* bound) {
  upb_StringView trace_id = upb_Message_GetFieldByDef(span, f_trace_id).str_val;
  upb_StringView span_id = upb_Message_GetFieldByDef(span, f_span_id).str_val;
  upb_StringView parent = upb_Message_GetFieldByDef(span, f_parent_span_id).str_val;
  if (!ids_valid(trace_id, span_id, parent)) Py_RETURN_NONE;
  Held held[MAX_KEYS];
  memset(held, 0, sizeof(Held) * (size_t)n_keys);
  int rare_call = 0;
  const upb_Array* pairs = upb_Message_GetFieldByDef(span, f_attributes).array_val;
  for (size_t i = 0, n = array_size(pairs); i < n; i++) {
    const upb_Message* pair = upb_Array_Get(pairs, i).msg_val;
    int index = key_index(upb_Message_GetFieldByDef(pair, f_key).str_val);
    if (index < 0) continue;  // not a kept key: dropped, as the decoders drop it
    Held* h = &held[index];
    const upb_Message* any = submessage(pair, f_value);
    const upb_FieldDef* kind = any ? upb_Message_WhichOneofByDef(any, o_value) : NULL;
    int role = keys[index].role;
    if (h->kind || role == R_RARE_ANY || !kind) Py_RETURN_NONE;  // a repeated key, a slower rule, or a None value
    h->kind = kind;
    h->value = upb_Message_GetFieldByDef(any, kind);
    switch (role) {
      case R_INPUT: case R_CACHE_READ: case R_CACHE_WRITE: case R_OUTPUT: case R_REASONING:
        if (kind != f_int || h->value.int64_val < 0 || h->value.int64_val > max_tokens) Py_RETURN_NONE;
        break;
      case R_STREAM:
        if (kind != f_bool) Py_RETURN_NONE;
        break;
      case R_MODEL: case R_CUSTOMER: case R_RESPONSE_ID:
        if (kind != f_string || !plain(h->value.str_val, 256)) Py_RETURN_NONE;
        break;
      case R_COST: case R_RARE_CALL:
        rare_call = 1;
        break;
      default:  // provider, operation, agent, tool, server address: any text
        if (kind != f_string) Py_RETURN_NONE;
    }
  }
  const Held* op = single(held, R_OPERATION);
  upb_StringView op_text = op && op->kind ? op->value.str_val : (upb_StringView){"", 0};
  const Held* agent = single(held, R_AGENT);
  const Held* tool = single(held, R_TOOL);
  int has_agent = agent && agent->kind && agent->value.str_val.size;
  int has_tool = tool && tool->kind && tool->value.str_val.size;
  // span_is_call, for the attributes this path takes (no Vercel operation id, no OpenInference span kind): a call
  // operation (CALL_OPERATIONS in ingestion.otlp); else, with no operation, agent or tool, a span that reports usage
  int is_call = equals(op_text, "chat") || equals(op_text, "generate_content") ||
                equals(op_text, "text_completion") || equals(op_text, "embeddings") ||
                (!op_text.size && !has_agent && !has_tool && (first_of(held, R_INPUT) || first_of(held, R_OUTPUT)));
  if (is_call && rare_call) Py_RETURN_NONE;
  const Held* customer = first_of(held, R_CUSTOMER);
  PyObject* customer_id = str_of(customer);  // plain: `_text` leaves it as it is
  PyObject* call = NULL;
  PyObject* response_id = Py_NewRef(s_empty);
  PyObject* label = NULL;
  PyObject* result = NULL;
  if (!customer_id) goto done;
  if (is_call) {
    int status_ok;
    call = call_of(span, held, op, customer_id, bound, &status_ok);
    if (call == Py_None) result = Py_NewRef(Py_None);  // refused, or out of this path's arithmetic
    if (!call || call == Py_None) goto done;
    const Held* response = single(held, R_RESPONSE_ID);
    if (status_ok && response && response->kind) {
      Py_SETREF(response_id, text(response->value.str_val));
      if (!response_id) goto done;
    }
  }
  // span_label: an agent's or a tool's segment, else none (workflow and function ids go to Python)
  const Held* named = (equals(op_text, "invoke_agent") || equals(op_text, "create_agent")) && has_agent ? agent
                      : equals(op_text, "execute_tool") && has_tool                                  ? tool
                                                                                                     : NULL;
  if (named) {
    PyObject* name = text(named->value.str_val);
    label = name ? PyObject_CallFunctionObjArgs(segment, named == agent ? s_agent_prefix : s_tool_prefix, name, NULL)
                 : NULL;
    Py_XDECREF(name);
  } else {
    label = Py_NewRef(s_empty);
  }
  if (!label) goto done;
  int zero_parent = parent.size && all_zero(parent);
  PyObject* args[10] = {hex(trace_id), hex(span_id), zero_parent ? Py_NewRef(s_empty) : hex(parent), label, Py_None,
                        customer_id, scope_source, response_id, is_call ? scope_rank : zero, call ? call : Py_None};
  if (args[0] && args[1] && args[2]) result = PyObject_Vectorcall(span_in, args, 10, NULL);
  for (int i = 0; i < 3; i++) Py_XDECREF(args[i]);
done:
  Py_XDECREF(customer_id);
  Py_XDECREF(call);
  Py_XDECREF(response_id);
  Py_XDECREF(label);
  return result;
}

// `_call` for the attributes this path takes: the EventIn, Py_None when `span_record` must decide, NULL on error.
static PyObject* call_of(const upb_Message* span, const Held* held, const Held* op, PyObject* customer_id,
                         PyObject* bound, int* status_ok) {
  long long tokens[5];
  const Held* found[5];
  static const int TOKEN_FIELDS[5] = {R_INPUT, R_OUTPUT, R_CACHE_READ, R_CACHE_WRITE, R_REASONING};
  for (int i = 0; i < 5; i++) {
    found[i] = first_of(held, TOKEN_FIELDS[i]);
    tokens[i] = found[i] ? found[i]->value.int64_val : 0;
  }
  int has_usage = found[0] || found[1];
  // tokens_inclusive: input includes the cache's reads and writes, output the reasoning
  if (tokens[2] + tokens[3] > tokens[0]) tokens[0] += tokens[2] + tokens[3];
  if (tokens[4] > tokens[1]) tokens[1] += tokens[4];
  const upb_Message* status_message = submessage(span, f_status);
  int error = status_message && upb_Message_GetFieldByDef(status_message, f_status_code).int32_val == 2;
  *status_ok = !error;
  uint64_t start = upb_Message_GetFieldByDef(span, f_start).uint64_val;
  uint64_t end = upb_Message_GetFieldByDef(span, f_end).uint64_val;
  if (start >= ((uint64_t)1 << 63) || (end >= start && start > 0 && end - start >= ((uint64_t)1 << 53)))
    Py_RETURN_NONE;  // beyond a double's exact integers: Python's own arithmetic decides
  PyObject* latency = NULL;
  if (end >= start && start > 0) {
    double ms = (double)(end - start) / 1e6;
    latency = ms > 1e10 ? Py_NewRef(Py_None) : PyFloat_FromDouble(ms);
  } else {
    latency = Py_NewRef(Py_None);
  }
  PyObject* seconds = PyFloat_FromDouble((double)(int64_t)start / 1e9);
  PyObject* timestamp = NULL;
  PyObject *metadata = NULL, *provider = NULL, *model = NULL, *provider_text = NULL, *server = NULL;
  PyObject* event = NULL;
  if (!latency || !seconds) goto done;
  timestamp = PyObject_CallFunctionObjArgs(fromtimestamp, seconds, utc, NULL);
  if (!timestamp) {  // out of range: span_record words the refusal
    if (!PyErr_ExceptionMatches(PyExc_OverflowError) && !PyErr_ExceptionMatches(PyExc_OSError) &&
        !PyErr_ExceptionMatches(PyExc_ValueError))
      goto done;
    PyErr_Clear();
    event = Py_NewRef(Py_None);
    goto done;
  }
  int late = PyObject_RichCompareBool(timestamp, bound, Py_GT);
  if (late < 0) goto done;
  if (late || PyDateTime_GET_YEAR(timestamp) < 2000) {  // refused by timestamp_error: span_record says why
    event = Py_NewRef(Py_None);
    goto done;
  }
  metadata = PyDict_New();
  if (!metadata || (!has_usage && !error && PyDict_SetItem(metadata, s_usage_missing, Py_True) < 0)) goto done;
  provider_text = str_of(first_of(held, R_PROVIDER));
  server = str_of(single(held, R_SERVER_ADDRESS));
  if (!provider_text || !server) goto done;
  provider = PyObject_CallFunctionObjArgs(provider_normalise, provider_text, server, NULL);
  if (!provider) goto done;
  if (!PyObject_IsTrue(provider)) Py_SETREF(provider, Py_NewRef(s_unknown));
  const Held* model_held = first_of(held, R_MODEL);
  model = model_held ? text(model_held->value.str_val) : Py_NewRef(s_unknown);
  if (!model) goto done;
  const Held* stream = first_of(held, R_STREAM);
  int embedding = op && op->kind && equals(op->value.str_val, "embeddings");
  PyObject* numbers[5] = {NULL};
  int complete = 1;
  for (int i = 0; i < 5; i++) complete &= (numbers[i] = PyLong_FromLongLong(tokens[i])) != NULL;
  if (complete) {
    PyObject* args[25] = {
        Py_None, Py_None, Py_None, Py_None, s_empty, s_empty, embedding ? s_embedding : s_llm, provider, model,
        s_empty, numbers[0], numbers[1], numbers[2], numbers[3], numbers[4], latency, Py_None,
        error ? s_error : s_ok, Py_None, customer_id, stream && stream->value.bool_val ? Py_True : Py_False,
        timestamp, Py_None, metadata, Py_None,
    };
    event = PyObject_Vectorcall(event_in, args, 25, NULL);
  }
  for (int i = 0; i < 5; i++) Py_XDECREF(numbers[i]);
done:
  Py_XDECREF(latency);
  Py_XDECREF(seconds);
  Py_XDECREF(timestamp);
  Py_XDECREF(metadata);
  Py_XDECREF(provider);
  Py_XDECREF(model);
  Py_XDECREF(provider_text);
  Py_XDECREF(server);
  return event;
}

// The body's spans: RawSpans, or with `bound` SpanIns where the fast path maps them.
static PyObject* walk(PyObject* body, PyObject* bound) {
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
      PyObject *source = NULL, *rank = NULL;  // the scope's, for the fast path
      if (bound &&
          (!(source = PyObject_CallOneArg(source_of, scope)) || !(rank = PyObject_CallOneArg(rank_of, scope)))) {
        Py_DECREF(scope);
        Py_XDECREF(source);
        goto fail;
      }
      const upb_Array* group_spans = upb_Message_GetFieldByDef(group, f_spans).array_val;
      int failed = 0;
      for (size_t k = 0; k < array_size(group_spans) && !failed; k++) {
        const upb_Message* message = upb_Array_Get(group_spans, k).msg_val;
        PyObject* span = bound ? record_of(message, source, rank, bound) : Py_NewRef(Py_None);
        if (span == Py_None) Py_SETREF(span, span_of(message, scope));
        failed = !span || PyList_Append(spans, span) < 0;
        Py_XDECREF(span);
      }
      Py_DECREF(scope);
      Py_XDECREF(source);
      Py_XDECREF(rank);
      if (failed) goto fail;
    }
  }
  upb_Arena_Free(arena);
  return spans;
fail:
  Py_XDECREF(spans);
  upb_Arena_Free(arena);
  return NULL;
}

// decode(body) -> list[RawSpan]; ValueError when upb cannot parse the body as an ExportTraceServiceRequest.
static PyObject* decode(PyObject* self, PyObject* body) { return walk(body, NULL); }

// records(body, bound) -> list of SpanIn (mapped here) and RawSpan (for `span_record`), in the body's order.
// `bound`: the latest start time a call may have (now + FUTURE_TOLERANCE). ValueError as `decode`.
static PyObject* records(PyObject* self, PyObject* args) {
  PyObject *body, *bound;
  if (!PyArg_ParseTuple(args, "OO", &body, &bound)) return NULL;
  if (!mapping_ready) {
    PyErr_SetString(PyExc_RuntimeError, "_otlp_upb.setup_mapping was not called");
    return NULL;
  }
  return walk(body, bound);
}

static PyMethodDef methods[] = {
    {"setup", setup, METH_VARARGS, "Load the descriptors, the kept attribute keys and the RawSpan class."},
    {"decode", decode, METH_O, "An ExportTraceServiceRequest's spans as RawSpans."},
    {"setup_mapping", setup_mapping, METH_VARARGS, "Load the mapping's role table, classes, functions and texts."},
    {"records", records, METH_VARARGS, "The spans as SpanIns where the fast path maps them, else RawSpans."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_otlp_upb", NULL, -1, methods};

PyMODINIT_FUNC PyInit__otlp_upb(void) { return PyModule_Create(&module); }

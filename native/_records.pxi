# Build NamedTuple records straight from C (included by _tokenizer.pyx and _zipdir.pyx).
#
# A checkpoint yields one call site per tensor and one zip entry per storage: building a plain
# tuple and then copying it into the NamedTuple (`tuple.__new__(cls, t)`) cost more than
# decoding the record. A NamedTuple subclass has tuple's layout (`__slots__ = ()`), so its
# instances are allocated with the type's own allocator and filled like a tuple, which is what
# `tuple.__new__(cls, t)` does inside CPython.

from cpython.ref cimport PyObject, Py_DECREF, Py_INCREF
from cpython.tuple cimport PyTuple_SET_ITEM


cdef check_record_type(type cls):
    """`cls` must lay out its instances exactly as tuple does (a NamedTuple does)."""
    if not issubclass(cls, tuple) or cls.__basicsize__ != tuple.__basicsize__ \
            or cls.__itemsize__ != tuple.__itemsize__ or cls.__dictoffset__:
        raise TypeError(f"{cls!r} is not a NamedTuple-like tuple subclass")


cdef extern from *:
    """
    static PyObject* fastscan_alloc_record(PyObject* cls, Py_ssize_t n) {
        PyTypeObject* tp = (PyTypeObject*)cls;
        return tp->tp_alloc(tp, n);
    }
    """
    PyObject* fastscan_alloc_record(object cls, Py_ssize_t n)


cdef inline object new_record(type cls, Py_ssize_t size):
    """An instance of tuple subclass `cls` with `size` empty slots; fill every slot with
    `set_field` before it escapes."""
    cdef PyObject* obj = fastscan_alloc_record(cls, size)
    if obj == NULL:
        raise MemoryError()
    record = <object>obj  # took a reference of its own
    Py_DECREF(record)
    return record


cdef inline void set_field(object record, Py_ssize_t i, object value):
    Py_INCREF(value)  # PyTuple_SET_ITEM steals a reference
    PyTuple_SET_ITEM(record, i, value)

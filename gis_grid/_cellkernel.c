/* CellIndex lookups in one compiled pass (see cellindex.py for the method). The
 * same exact arithmetic as the numpy path: (v - origin) * 2^k is exact, and
 * truncation equals floor for the non-negative values that pass the range test
 * (NaN fails it). Built with -fno-fast-math so the cross product rounds the same. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>

static int get(PyObject *obj, Py_buffer *view, int writable, const char *what) {
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, view, flags) < 0) {
        PyErr_Format(PyExc_TypeError, "%s must be a C-contiguous array", what);
        return -1;
    }
    return 0;
}

/* One pass over the points: interior cells from the table; a boundary cell crossed by
 * a single segment by the sign of one cross product (the polygon on each side is in
 * `side`); -3 where only the exact test can tell. Returns the number of points that
 * fell in boundary cells. Mirrors _classify_numpy in cellindex.py operation for
 * operation, so both give identical answers. */
#define OUTSIDE (-1)
#define BOUNDARY (-2)
#define NEEDS_EXACT (-3)
#define SURE 1e-12

/* branch-free lower bound: boundary points arrive in random order, so a branchy
 * search mispredicts on almost every step */
static Py_ssize_t lower_bound(const long long *a, Py_ssize_t n, long long v) {
    if (n == 0) return 0;
    const long long *base = a;
    while (n > 1) {
        Py_ssize_t half = n / 2;
        base = (base[half] < v) ? base + half : base;
        n -= half;
    }
    return (base - a) + (*base < v);
}

#define CLASSIFY_LOOP(T)                                                                     \
    {                                                                                        \
        const T *lab = label.buf; T *o = out.buf;                                            \
        for (Py_ssize_t i = 0; i < n; i++) {                                                 \
            double fx = (px[i] - x0) * inv, fy = (py[i] - y0) * inv;                          \
            if (!(fx >= 0.0 && fx < fnx && fy >= 0.0 && fy < fny)) { o[i] = OUTSIDE; continue; } \
            long long flat = (long long)fy * nx + (long long)fx;                             \
            T v = lab[flat];                                                                 \
            if (v != BOUNDARY) { o[i] = v; continue; }                                       \
            nb++;                                                                            \
            Py_ssize_t k = lower_bound(bc, nbc, flat);                                       \
            const double *s4 = sg + 4 * k;                                                   \
            double p = (s4[2] - s4[0]) * (py[i] - s4[1]);                                     \
            double q = (s4[3] - s4[1]) * (px[i] - s4[0]);                                     \
            double cross = p - q;                                                            \
            if (fabs(cross) > SURE * (fabs(p) + fabs(q)) + 1e-300)                           \
                o[i] = (T)(cross > 0 ? sd[2 * k] : sd[2 * k + 1]);                           \
            else                                                                             \
                o[i] = NEEDS_EXACT;                                                          \
        }                                                                                    \
    }

static PyObject *classify(PyObject *self, PyObject *args) {
    PyObject *objs[8];
    double x0, y0, inv;
    Py_ssize_t nx, ny;
    if (!PyArg_ParseTuple(args, "OOdddnnOOOOO", &objs[0], &objs[1], &x0, &y0, &inv, &nx, &ny,
                          &objs[2], &objs[3], &objs[4], &objs[5], &objs[6]))
        return NULL;
    const char *names[7] = {"x", "y", "label", "bcells", "seg", "side", "out"};
    Py_buffer b[7];
    int got = 0;
    for (; got < 7; got++)
        if (get(objs[got], &b[got], got == 6, names[got]) < 0) break;
    Py_ssize_t nb = 0;
    int ok = got == 7;
    if (ok) {
        Py_buffer x = b[0], y = b[1], label = b[2], bcells = b[3], seg = b[4], side = b[5], out = b[6];
        Py_ssize_t n = x.len / 8, nbc = bcells.len / 8;
        ok = x.itemsize == 8 && y.itemsize == 8 && y.len == x.len && bcells.itemsize == 8
             && seg.itemsize == 8 && seg.len == 4 * bcells.len && side.itemsize == 4
             && side.len == bcells.len && label.itemsize == out.itemsize
             && (label.itemsize == 2 || label.itemsize == 4) && out.len / out.itemsize == n
             && label.len / label.itemsize >= nx * ny;
        if (!ok) {
            PyErr_SetString(PyExc_ValueError, "classify: unexpected array types or sizes");
        } else {
            const double *px = x.buf, *py = y.buf, *sg = seg.buf;
            const long long *bc = bcells.buf;
            const int *sd = side.buf;
            double fnx = (double)nx, fny = (double)ny;
            Py_BEGIN_ALLOW_THREADS
            if (label.itemsize == 2) CLASSIFY_LOOP(short) else CLASSIFY_LOOP(int)
            Py_END_ALLOW_THREADS
        }
    }
    for (int k = 0; k < got; k++) PyBuffer_Release(&b[k]);
    if (!ok) return NULL;
    return PyLong_FromSsize_t(nb);
}

/* table[idx] with Python's meaning of -1 (the last entry: the "outside" sentinel), for
 * the per-level category codes of a located batch. numpy's fancy indexing first widens
 * an int16 index to intp (an 8-byte copy per point) and checks bounds per element; the
 * indices here come from classify, so they are in range by construction, but a bad
 * one still only maps to the sentinel rather than reading out of bounds. */
#define TAKE_LOOP(TI, TT)                                                                    \
    {                                                                                        \
        const TI *ix = idx.buf; const TT *tb = table.buf; TT *o = out.buf;                   \
        for (Py_ssize_t i = 0; i < n; i++) {                                                 \
            Py_ssize_t j = ix[i];                                                            \
            o[i] = tb[(j >= 0 && j < m) ? j : m - 1];                                        \
        }                                                                                    \
    }
#define TAKE_TABLE(TI)                                                                       \
    switch (table.itemsize) {                                                                \
        case 1: TAKE_LOOP(TI, signed char) break;                                            \
        case 2: TAKE_LOOP(TI, short) break;                                                  \
        default: TAKE_LOOP(TI, int) break;                                                   \
    }

static PyObject *take(PyObject *self, PyObject *args) {
    PyObject *objs[3];
    if (!PyArg_ParseTuple(args, "OOO", &objs[0], &objs[1], &objs[2])) return NULL;
    const char *names[3] = {"table", "idx", "out"};
    Py_buffer b[3];
    int got = 0;
    for (; got < 3; got++)
        if (get(objs[got], &b[got], got == 2, names[got]) < 0) break;
    int ok = got == 3;
    if (ok) {
        Py_buffer table = b[0], idx = b[1], out = b[2];
        Py_ssize_t m = table.len / (table.itemsize ? table.itemsize : 1);
        Py_ssize_t n = idx.len / (idx.itemsize ? idx.itemsize : 1);
        ok = m > 0 && out.itemsize == table.itemsize && out.len / out.itemsize == n
             && (table.itemsize == 1 || table.itemsize == 2 || table.itemsize == 4)
             && (idx.itemsize == 2 || idx.itemsize == 4);
        if (!ok) {
            PyErr_SetString(PyExc_ValueError, "take: unexpected array types or sizes");
        } else {
            Py_BEGIN_ALLOW_THREADS
            if (idx.itemsize == 2) TAKE_TABLE(short) else TAKE_TABLE(int)
            Py_END_ALLOW_THREADS
        }
    }
    for (int k = 0; k < got; k++) PyBuffer_Release(&b[k]);
    if (!ok) return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"take", take, METH_VARARGS, "take(table, idx, out): out[i] = table[idx[i]], -1 -> last entry"},
    {"classify", classify, METH_VARARGS,
     "classify(x, y, x0, y0, inv, nx, ny, label, bcells, seg, side, out) -> points in boundary cells"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_cellkernel", NULL, -1, methods};

PyMODINIT_FUNC PyInit__cellkernel(void) { return PyModule_Create(&module); }

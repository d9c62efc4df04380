/* Test-only entry point into rpcgen's XDR filters, for the cross-checks of
 * the generated C# codecs (tests/Migration.Tests/Xdr). The filters
 * themselves (xdr_<type>, exported from this library) are rpcgen's output
 * for the protocol files; this only runs one through xdrmem: decode, then
 * encode the decoded value again, then free it. Not part of the daemons. */
#include <rpc/rpc.h>
#include <stdint.h>
#include <string.h>

typedef bool_t (*virxdrtestFilter)(XDR *, void *);

/* Largest rpcgen struct of the protocols is far below this. */
#define VIRXDRTEST_OBJ_MAX 4096

/* Decodes one value with `filter` from in[0..inlen), reports how far the
 * decoder read in *consumed, then encodes it into out[0..outcap) and
 * reports the length in *outlen. Returns 1 when both succeeded, 0 when the
 * decode failed, -1 when the decode succeeded and the encode failed. */
int
virxdrtestRoundTrip(void *filter, const uint8_t *in, uint32_t inlen, uint32_t *consumed,
                    uint8_t *out, uint32_t outcap, uint32_t *outlen)
{
    virxdrtestFilter f = (virxdrtestFilter)filter;
    _Alignas(16) unsigned char obj[VIRXDRTEST_OBJ_MAX];
    XDR xdr;
    int ret;

    memset(obj, 0, sizeof(obj));
    *consumed = 0;
    *outlen = 0;
    xdrmem_create(&xdr, (char *)in, inlen, XDR_DECODE);
    ret = f(&xdr, obj) ? 1 : 0;
    *consumed = xdr_getpos(&xdr);
    xdr_destroy(&xdr);
    if (ret == 1) {
        xdrmem_create(&xdr, (char *)out, outcap, XDR_ENCODE);
        if (!f(&xdr, obj))
            ret = -1;
        *outlen = xdr_getpos(&xdr);
        xdr_destroy(&xdr);
    }
    xdr_free((xdrproc_t)f, (char *)obj);
    return ret;
}

#include "nbd_proto.h"

#include <errno.h>
#include <string.h>

#include "util.h"

int nbd_parse_request(const uint8_t *buf, size_t len, struct nbd_request *req)
{
	if (len < NBD_REQUEST_LEN)
		return -EAGAIN;
	if (get_be32(buf) != NBD_REQUEST_MAGIC)
		return -EBADMSG;
	req->flags = get_be16(buf + 4);
	req->type = get_be16(buf + 6);
	req->handle = get_be64(buf + 8);
	req->offset = get_be64(buf + 16);
	req->length = get_be32(buf + 24);
	return 0;
}

/* the flags each command may carry; anything else is EINVAL */
static uint16_t allowed_flags(uint16_t type)
{
	switch (type) {
	case NBD_CMD_READ: return NBD_CMD_FLAG_DF;
	case NBD_CMD_WRITE: return NBD_CMD_FLAG_FUA;
	case NBD_CMD_TRIM: return NBD_CMD_FLAG_FUA;
	case NBD_CMD_WRITE_ZEROES:
		return NBD_CMD_FLAG_FUA | NBD_CMD_FLAG_NO_HOLE;
	default: return 0;
	}
}

uint32_t nbd_validate_request(const struct nbd_request *req, uint64_t size,
			      const char **why)
{
	uint64_t end;
	bool range_ok;

	switch (req->type) {
	case NBD_CMD_READ:
	case NBD_CMD_WRITE:
	case NBD_CMD_TRIM:
	case NBD_CMD_WRITE_ZEROES:
		break;
	case NBD_CMD_FLUSH:
	case NBD_CMD_DISC:
		if (req->flags) {
			*why = "flags on a command that takes none";
			return NBD_EINVAL;
		}
		return 0;
	default:
		*why = "unknown command";
		return NBD_EINVAL;
	}
	if (req->flags & ~allowed_flags(req->type)) {
		*why = "flag not valid for this command";
		return NBD_EINVAL;
	}
	if (req->length == 0) {
		*why = "zero length";
		return NBD_EINVAL;
	}
	if ((req->type == NBD_CMD_READ || req->type == NBD_CMD_WRITE) &&
	    req->length > NBD_MAX_PAYLOAD) {
		*why = "length above the advertised maximum block size";
		return req->type == NBD_CMD_READ ? NBD_EOVERFLOW : NBD_EINVAL;
	}
	range_ok = !add_overflows_u64(req->offset, req->length, &end) &&
		   end <= size;
	if (!range_ok) {
		*why = "range past the end of the export";
		/* the spec asks ENOSPC for writes, EINVAL for reads/trims */
		return (req->type == NBD_CMD_WRITE ||
			req->type == NBD_CMD_WRITE_ZEROES) ? NBD_ENOSPC : NBD_EINVAL;
	}
	return 0;
}

int nbd_parse_opt_hdr(const uint8_t *buf, size_t len, struct nbd_opt_hdr *h)
{
	if (len < NBD_OPT_HDR_LEN)
		return -EAGAIN;
	if (get_be64(buf) != NBD_IHAVEOPT)
		return -EBADMSG;
	h->option = get_be32(buf + 8);
	h->length = get_be32(buf + 12);
	return 0;
}

int nbd_parse_go(const uint8_t *buf, size_t len, struct nbd_go_req *go)
{
	uint32_t nlen;
	size_t pos;

	if (len < 4)
		return -EINVAL;
	nlen = get_be32(buf);
	if (nlen > NBD_NAME_MAX_WIRE || (size_t)nlen + 6 > len)
		return -EINVAL;
	memcpy(go->name, buf + 4, nlen);
	go->name[nlen] = '\0';
	if (memchr(go->name, '\0', nlen))
		return -EINVAL; /* names MUST NOT contain NUL */
	pos = 4 + nlen;
	go->n_info = get_be16(buf + pos);
	pos += 2;
	if (go->n_info > ARRAY_SIZE(go->info) ||
	    len != pos + 2 * (size_t)go->n_info)
		return -EINVAL;
	for (unsigned i = 0; i < go->n_info; i++)
		go->info[i] = get_be16(buf + pos + 2 * i);
	return 0;
}

uint32_t nbd_errno_to_wire(int err)
{
	switch (err) {
	case 0: return 0;
	case EPERM: case EROFS: return NBD_EPERM;
	case ENOMEM: return NBD_ENOMEM;
	case EINVAL: return NBD_EINVAL;
	case ENOSPC: case EDQUOT: case EFBIG: return NBD_ENOSPC;
	case EOVERFLOW: return NBD_EOVERFLOW;
	case EOPNOTSUPP: return NBD_ENOTSUP;
	case ESHUTDOWN: return NBD_ESHUTDOWN;
	default: return NBD_EIO;
	}
}

const char *nbd_cmd_name(uint16_t type)
{
	switch (type) {
	case NBD_CMD_READ: return "NBD_CMD_READ";
	case NBD_CMD_WRITE: return "NBD_CMD_WRITE";
	case NBD_CMD_DISC: return "NBD_CMD_DISC";
	case NBD_CMD_FLUSH: return "NBD_CMD_FLUSH";
	case NBD_CMD_TRIM: return "NBD_CMD_TRIM";
	case NBD_CMD_CACHE: return "NBD_CMD_CACHE";
	case NBD_CMD_WRITE_ZEROES: return "NBD_CMD_WRITE_ZEROES";
	case NBD_CMD_BLOCK_STATUS: return "NBD_CMD_BLOCK_STATUS";
	}
	return "unknown command";
}

const char *nbd_opt_name(uint32_t opt)
{
	switch (opt) {
	case NBD_OPT_EXPORT_NAME: return "NBD_OPT_EXPORT_NAME";
	case NBD_OPT_ABORT: return "NBD_OPT_ABORT";
	case NBD_OPT_LIST: return "NBD_OPT_LIST";
	case NBD_OPT_PEEK_EXPORT: return "NBD_OPT_PEEK_EXPORT";
	case NBD_OPT_STARTTLS: return "NBD_OPT_STARTTLS";
	case NBD_OPT_INFO: return "NBD_OPT_INFO";
	case NBD_OPT_GO: return "NBD_OPT_GO";
	case NBD_OPT_STRUCTURED_REPLY: return "NBD_OPT_STRUCTURED_REPLY";
	case NBD_OPT_LIST_META_CONTEXT: return "NBD_OPT_LIST_META_CONTEXT";
	case NBD_OPT_SET_META_CONTEXT: return "NBD_OPT_SET_META_CONTEXT";
	case NBD_OPT_EXTENDED_HEADERS: return "NBD_OPT_EXTENDED_HEADERS";
	}
	return "unknown option";
}

size_t nbd_put_simple_reply(uint8_t *out, uint32_t error, uint64_t handle)
{
	put_be32(out, NBD_SIMPLE_REPLY_MAGIC);
	put_be32(out + 4, error);
	put_be64(out + 8, handle);
	return NBD_SIMPLE_REPLY_LEN;
}

size_t nbd_put_chunk_hdr(uint8_t *out, uint16_t flags, uint16_t type,
			 uint64_t handle, uint32_t length)
{
	put_be32(out, NBD_STRUCTURED_REPLY_MAGIC);
	put_be16(out + 4, flags);
	put_be16(out + 6, type);
	put_be64(out + 8, handle);
	put_be32(out + 16, length);
	return NBD_CHUNK_HDR_LEN;
}

size_t nbd_put_opt_reply_hdr(uint8_t *out, uint32_t option, uint32_t type,
			     uint32_t length)
{
	put_be64(out, NBD_OPT_REPLY_MAGIC);
	put_be32(out + 8, option);
	put_be32(out + 12, type);
	put_be32(out + 16, length);
	return NBD_OPT_REPLY_HDR_LEN;
}

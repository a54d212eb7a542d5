#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>

#include "rpc_priv.h"

grpc_byte_buffer *rpc_encode(const ProtobufCMessage *msg)
{
	size_t len = protobuf_c_message_get_packed_size(msg);
	grpc_slice slice = grpc_slice_malloc(len);
	grpc_byte_buffer *bb;

	protobuf_c_message_pack(msg, GRPC_SLICE_START_PTR(slice));
	bb = grpc_raw_byte_buffer_create(&slice, 1);
	grpc_slice_unref(slice);
	return bb;
}

ProtobufCMessage *rpc_decode(grpc_byte_buffer *bb,
			     const ProtobufCMessageDescriptor *desc)
{
	grpc_byte_buffer_reader reader;
	ProtobufCMessage *msg;
	grpc_slice all;

	if (!grpc_byte_buffer_reader_init(&reader, bb))
		return NULL;
	all = grpc_byte_buffer_reader_readall(&reader);
	grpc_byte_buffer_reader_destroy(&reader);
	msg = protobuf_c_message_unpack(desc, NULL, GRPC_SLICE_LENGTH(all),
					GRPC_SLICE_START_PTR(all));
	grpc_slice_unref(all);
	return msg;
}

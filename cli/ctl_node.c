/* urbdctl node info, export list */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "ctl.h"
#include "util.h"

#define METHOD(m) "/urbd.v1.Control/" m

static int node_info(struct ctl *c)
{
	Urbd__V1__NodeInfoRequest req = URBD__V1__NODE_INFO_REQUEST__INIT;
	Urbd__V1__NodeInfoResponse *resp;
	const Urbd__V1__NodeInfo *n;
	struct json_object *o;
	char a[32], b[32];
	int ret;

	ret = ctl_call(c, METHOD("NodeInfo"), &req.base,
		       &urbd__v1__node_info_response__descriptor,
		       (ProtobufCMessage **)&resp);
	if (ret)
		return ret;
	n = resp->node;
	if (!n) {
		fprintf(stderr, "urbdctl: the daemon sent no node info\n");
		ret = CTL_EXIT_ERROR;
	} else if (c->json) {
		o = json_object_new_object();
		if (o) {
			json_object_object_add(o, "node_id", json_object_new_string(n->node_id));
			json_object_object_add(o, "zone", json_object_new_string(n->zone));
			json_object_object_add(o, "store_path", json_object_new_string(n->store_path));
			json_object_object_add(o, "version", json_object_new_string(n->version));
			json_object_object_add(o, "capacity_bytes", json_object_new_uint64(n->capacity_bytes));
			json_object_object_add(o, "free_bytes", json_object_new_uint64(n->free_bytes));
			json_object_object_add(o, "reactors", json_object_new_uint64(n->reactors));
			json_object_object_add(o, "nbd_listen", json_object_new_string(n->nbd_listen));
			json_object_object_add(o, "nbd_unix", json_object_new_string(n->nbd_unix));
			json_object_object_add(o, "uptime_ns", json_object_new_uint64(n->uptime_ns));
		}
		ret = ctl_json_print(o);
	} else {
		printf("Node:          %s\n", n->node_id);
		printf("Zone:          %s\n", n->zone[0] ? n->zone : "-");
		printf("Version:       %s\n", n->version);
		printf("Store:         %s\n", n->store_path);
		printf("Capacity:      %s (%s free)\n",
		       urbd_format_size(n->capacity_bytes, a, sizeof(a)),
		       urbd_format_size(n->free_bytes, b, sizeof(b)));
		printf("Reactors:      %" PRIu32 "\n", n->reactors);
		printf("NBD (TCP):     %s\n", n->nbd_listen[0] ? n->nbd_listen : "-");
		printf("NBD (unix):    %s\n", n->nbd_unix[0] ? n->nbd_unix : "-");
		printf("Uptime:        %s\n", ctl_format_duration(n->uptime_ns, a, sizeof(a)));
	}
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	return ret;
}

int ctl_cmd_node(struct ctl *c, int argc, char **argv)
{
	if (argc != 1 || strcmp(argv[0], "info") != 0)
		return ctl_usage_error("usage: urbdctl node info");
	return node_info(c);
}

static struct json_object *exports_json(const Urbd__V1__ListExportsResponse *r)
{
	struct json_object *root = json_object_new_object();
	struct json_object *arr = json_object_new_array();

	if (!root || !arr) {
		json_object_put(root);
		json_object_put(arr);
		return NULL;
	}
	for (size_t i = 0; i < r->n_exports; i++) {
		const Urbd__V1__Export *e = r->exports[i];
		struct json_object *o = json_object_new_object();

		if (!o)
			continue;
		json_object_object_add(o, "volume", json_object_new_string(e->volume));
		json_object_object_add(o, "protocol", json_object_new_string(e->protocol));
		json_object_object_add(o, "address", json_object_new_string(e->address));
		json_object_object_add(o, "connections", json_object_new_uint64(e->connections));
		json_object_array_add(arr, o);
	}
	json_object_object_add(root, "exports", arr);
	return root;
}

int ctl_cmd_export(struct ctl *c, int argc, char **argv)
{
	Urbd__V1__ListExportsRequest req = URBD__V1__LIST_EXPORTS_REQUEST__INIT;
	Urbd__V1__ListExportsResponse *resp;
	struct ctl_table t;
	int ret;

	if (argc != 1 || (strcmp(argv[0], "list") != 0 && strcmp(argv[0], "ls") != 0))
		return ctl_usage_error("usage: urbdctl export list");
	ret = ctl_call(c, METHOD("ListExports"), &req.base,
		       &urbd__v1__list_exports_response__descriptor,
		       (ProtobufCMessage **)&resp);
	if (ret)
		return ret;
	if (c->json) {
		ret = ctl_json_print(exports_json(resp));
	} else {
		ctl_table_init(&t, 4, "VOLUME", "PROTOCOL", "CONNS", "ADDRESS");
		for (size_t i = 0; i < resp->n_exports; i++) {
			const Urbd__V1__Export *e = resp->exports[i];
			char conns[16];

			snprintf(conns, sizeof(conns), "%" PRIu32, e->connections);
			ctl_table_add(&t, e->volume, e->protocol, conns, e->address);
		}
		ctl_table_print(&t);
		ctl_table_free(&t);
	}
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	return ret;
}

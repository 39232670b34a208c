package main

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
)

var (
	scheme = runtime.NewScheme()
	codecs = serializer.NewCodecFactory(scheme)
	coreV1 = corev1.SchemeGroupVersion
	// The apiserver decodes into an internal version; here it is the v1 Go types themselves, so
	// no conversion functions are needed (the scheme only relabels the kind).
	coreInternal = schema.GroupVersion{Group: "", Version: runtime.APIVersionInternal}
)

// The types served, registered as v1 and as the internal version.
var servedTypes = []runtime.Object{
	&corev1.Namespace{}, &corev1.NamespaceList{},
	&corev1.Secret{}, &corev1.SecretList{},
	&corev1.ConfigMap{}, &corev1.ConfigMapList{},
}

func init() {
	if err := corev1.AddToScheme(scheme); err != nil {
		panic(err)
	}
	// corev1.AddToScheme also registers the meta types (Status, ListOptions, …) under core v1.
	scheme.AddKnownTypes(coreInternal, servedTypes...)
}

// storageCodec writes core v1 protobuf, as kube-apiserver does (identity-stored values start with
// "k8s\x00"), and reads protobuf or JSON.
func storageCodec() runtime.Codec {
	info, ok := runtime.SerializerInfoForMediaType(codecs.SupportedMediaTypes(), runtime.ContentTypeProtobuf)
	if !ok {
		panic("no protobuf serializer")
	}
	return codecs.CodecForVersions(info.Serializer, codecs.UniversalDeserializer(), coreV1, coreInternal)
}
